"""The cluster of an environment spectral runs itself: the local provider's, or the pgBackRest
provider's (which archives with archive-push and writes pgBackRest's configuration)."""

from __future__ import annotations

from spectral.config.models import EnvironmentConfig, SpectralConfig
from spectral.providers.local.environment import LocalEnvironment


def managed_environment(cfg: SpectralConfig, name: str,
                        env: EnvironmentConfig) -> LocalEnvironment:
    from spectral.environment import open_environment
    from spectral.providers.pgbackrest.settings import PgBackRestSettings

    environment = open_environment(cfg, name)
    if isinstance(env, PgBackRestSettings):
        from spectral.providers.pgbackrest.open import pgbackrest_environment

        return pgbackrest_environment(environment)
    from spectral.providers.local.open import local_environment

    return local_environment(environment)
