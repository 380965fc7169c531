"""The local provider from an opened environment (the registry's factory for 'local')."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spectral.pg.binaries import find_binaries
from spectral.providers.local.environment import LocalEnvironment
from spectral.providers.local.settings import LocalSettings

if TYPE_CHECKING:
    from spectral.environment import Environment
    from spectral.providers.local.provider import LocalProvider


def local_environment(environment: Environment) -> LocalEnvironment:
    """The cluster spectral runs for the environment, its paths and server sessions."""
    settings = environment.config
    assert isinstance(settings, LocalSettings)
    return LocalEnvironment(environment.name, environment.state_dir,
                            find_binaries(settings.pg_bin_dir), settings.database)


def local_provider(environment: Environment) -> LocalProvider:
    from spectral.providers.local.provider import LocalProvider

    return LocalProvider(local_environment(environment), environment.report)
