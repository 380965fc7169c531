"""The pgBackRest provider from an opened environment (the registry's factory for
'pgbackrest')."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spectral.pg.binaries import find_binaries
from spectral.providers.pgbackrest.settings import PgBackRestSettings

if TYPE_CHECKING:
    from spectral.environment import Environment
    from spectral.providers.local.environment import LocalEnvironment
    from spectral.providers.local.provider import ManagedProvider


def pgbackrest_environment(environment: Environment) -> LocalEnvironment:
    """The cluster spectral runs for the environment (the host), with pgBackRest as its
    repository strategy: archiving with archive-push."""
    from spectral.providers.local.environment import LocalEnvironment
    from spectral.providers.pgbackrest.conf import secret_env
    from spectral.providers.pgbackrest.strategy import PgBackRestStrategy

    settings = environment.config
    assert isinstance(settings, PgBackRestSettings)
    secrets = secret_env(settings.pgbackrest, environment.spectral.base_dir)
    return LocalEnvironment(environment.name, environment.state_dir,
                            find_binaries(settings.pg_bin_dir), settings.database,
                            lambda host: PgBackRestStrategy(host, settings.pgbackrest, secrets))


def pgbackrest_provider(environment: Environment) -> ManagedProvider:
    """The managed provider over that host and strategy."""
    from spectral.providers.local.provider import ManagedProvider

    return ManagedProvider(pgbackrest_environment(environment), environment.report)
