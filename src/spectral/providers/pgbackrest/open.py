"""The pgBackRest provider from an opened environment (the registry's factory for
'pgbackrest')."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spectral.pg.binaries import find_binaries
from spectral.providers.pgbackrest.settings import PgBackRestSettings

if TYPE_CHECKING:
    from spectral.environment import Environment
    from spectral.providers.pgbackrest.environment import PgBackRestEnvironment
    from spectral.providers.pgbackrest.provider import PgBackRestProvider


def pgbackrest_environment(environment: Environment) -> PgBackRestEnvironment:
    """The cluster spectral runs for the environment, archiving with archive-push."""
    from spectral.providers.pgbackrest.conf import secret_env
    from spectral.providers.pgbackrest.environment import PgBackRestEnvironment

    settings = environment.config
    assert isinstance(settings, PgBackRestSettings)
    return PgBackRestEnvironment(environment.name, environment.state_dir,
                                 find_binaries(settings.pg_bin_dir), settings.database,
                                 settings.pgbackrest,
                                 secret_env(settings.pgbackrest, environment.spectral.base_dir))


def pgbackrest_provider(environment: Environment) -> PgBackRestProvider:
    from spectral.providers.pgbackrest.provider import PgBackRestProvider

    return PgBackRestProvider(pgbackrest_environment(environment), environment.report,
                              environment.ledger)
