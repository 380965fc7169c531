"""The cluster of an environment spectral runs itself: the local provider's, or the pgBackRest
provider's (which archives with archive-push and writes pgBackRest's configuration)."""

from __future__ import annotations

from spectral.config.models import EnvironmentConfig, ProviderKind, SpectralConfig
from spectral.pg.binaries import find_binaries
from spectral.providers.local.environment import LocalEnvironment


def managed_environment(cfg: SpectralConfig, name: str,
                        env: EnvironmentConfig) -> LocalEnvironment:
    bins = find_binaries(env.pg_bin_dir)
    if env.provider is ProviderKind.PGBACKREST:
        from spectral.providers.pgbackrest.conf import secret_env
        from spectral.providers.pgbackrest.environment import PgBackRestEnvironment

        assert env.pgbackrest is not None
        return PgBackRestEnvironment(name, cfg.state_dir(name), bins, env.database,
                                     env.pgbackrest, secret_env(env.pgbackrest, cfg.base_dir))
    return LocalEnvironment(name, cfg.state_dir(name), bins, env.database)
