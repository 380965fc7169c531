"""The one place that maps a configured provider name to its settings model and its factory.

A backend is one line in BACKENDS: the `provider` values it takes, its settings model (in its
own package, a subclass of `EnvironmentConfig` whose `provider` is a Literal of those values)
and the factory that builds its provider from an opened `Environment` ("module:function",
imported only when an environment of that provider is opened). An environment's table is
validated by the one backend it selects (`select`): only that backend's settings are imported
and built (config/environments.py)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from collections.abc import Mapping

    from spectral.config.base import EnvironmentConfig
    from spectral.environment import Environment
    from spectral.pg.binaries import PgBinaries
    from spectral.pg.cluster import Cluster
    from spectral.providers.base import Provider


class Server(Protocol):
    """The PostgreSQL spectral runs for an environment (`spectral local up | down | status |
    psql`), for the backends that run one."""

    name: str
    bins: PgBinaries
    stream_release: str | None

    def exists(self) -> bool: ...

    def up(self) -> tuple[Cluster, bool]: ...

    def down(self) -> bool: ...

    def status(self) -> dict[str, Any]: ...

    def session(self) -> AbstractContextManager[Cluster]: ...


def _load(path: str) -> Any:
    """"package.module:name" under spectral.providers."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(f"spectral.providers.{module}"), name)


@dataclass(frozen=True)
class Backend:
    """A provider: the `provider` values it takes (its settings' Literal, the first its
    name; written here so that picking a backend imports no other's settings), its settings
    model, the factory of its provider and, when spectral runs its PostgreSQL, the factory of
    that server ("package.module:name" under spectral.providers; each imported when an
    environment of theirs is validated or opened)."""

    values: tuple[str, ...]
    settings_path: str
    factory: str
    server: str | None = None
    tag: str | None = None       # when its `provider` value is another backend's too

    @property
    def provider(self) -> str:
        """The `provider` value that selects it: the first its settings' Literal allows."""
        return self.values[0]

    @property
    def settings(self) -> type[EnvironmentConfig]:
        return cast("type[EnvironmentConfig]", _load(self.settings_path))

    @property
    def name(self) -> str:
        """Its name in the registry: its `provider` value, unless it shares that."""
        return self.tag or self.provider

    def open(self, environment: Environment) -> Provider:
        build = cast("Callable[[Environment], Provider]", _load(self.factory))
        return build(environment)

    def open_server(self, environment: Environment) -> Server | None:
        if self.server is None:
            return None
        build = cast("Callable[[Environment], Server]", _load(self.server))
        return build(environment)


# The one list of backends: a new one is its package (settings model, factory) and a line here.
BACKENDS: tuple[Backend, ...] = (
    Backend(("local",), "local.settings:LocalSettings", "local.open:local_provider",
            "local.open:local_environment"),
    Backend(("pgbackrest",), "pgbackrest.settings:PgBackRestSettings",
            "pgbackrest.open:pgbackrest_provider", "pgbackrest.open:pgbackrest_environment"),
    Backend(("supabase",), "supabase.settings:SupabaseSettings",
            "supabase.open:supabase_provider"),
    Backend(("dsn", "local"), "dsn.settings:DsnSettings", "dsn.provider:dsn_provider"),
    Backend(("pgbackrest",), "pgbackrest.settings:AttachedPgBackRestSettings",
            "pgbackrest.attach:attached_provider", tag="pgbackrest (attach = true)"),
    Backend(("archive",), "archive.settings:ArchiveSettings", "archive.open:archive_provider"),
    Backend(("barman-cloud",), "barman.settings:BarmanCloudSettings",
            "barman.open:barman_cloud_provider"),
)
PROVIDERS: dict[str, Backend] = {b.name: b for b in BACKENDS}


UNKNOWN_PROVIDER = "provider: expected one of " + ", ".join(
    map(repr, dict.fromkeys(b.provider for b in BACKENDS)))


def select(table: Mapping[str, Any]) -> Backend | None:
    """The backend an [environments.<name>] table is for: the one whose settings select it
    (`EnvironmentConfig.selects`: its `provider`, and what tells backends sharing one apart);
    only the settings of backends taking its `provider` value are imported."""
    value = table.get("provider")
    return next((b for b in BACKENDS if value in b.values and b.settings.selects(table)), None)


def backend(settings: EnvironmentConfig) -> Backend:
    """The backend whose settings these are."""
    return next(b for b in BACKENDS
                if settings.provider in b.values and type(settings) is b.settings)


def open_server(environment: Environment) -> Server:
    """The PostgreSQL spectral runs for the environment; refused for one it does not run."""
    server = backend(environment.config).open_server(environment)
    if server is None:
        from spectral.errors import UsageError

        raise UsageError(f"environment {environment.name!r} is not a local environment run by "
                         f"spectral (provider {environment.config.provider!r}"
                         f"{', with a dsn' if environment.config.dsn else ''}): this command "
                         f"is for environments spectral runs",
                         hint=f"these commands are for provider = "
                              f"{' or '.join(repr(b.name) for b in BACKENDS if b.server)}")
    return server


def open_provider(environment: Environment) -> Provider:
    """The environment's provider, from its backend's factory."""
    return backend(environment.config).open(environment)
