"""The one place that maps a configured provider name to its settings model and its factory.

A backend is one line in BACKENDS: its settings model (in its own package, a subclass of
`EnvironmentConfig` whose `provider` is a Literal of its name) and the factory that builds its
provider from an opened `Environment` ("module:function", imported only when an environment of
that provider is opened). The configuration's environments are the union of these models,
keyed by `provider`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Union, cast, get_args

from pydantic import Discriminator, Tag

from spectral.config.base import EnvironmentConfig
from spectral.providers.dsn.settings import DsnSettings
from spectral.providers.local.settings import LocalSettings
from spectral.providers.pgbackrest.settings import PgBackRestSettings
from spectral.providers.supabase.settings import SupabaseSettings

if TYPE_CHECKING:
    from spectral.environment import Environment
    from spectral.providers.base import Provider


@dataclass(frozen=True)
class Backend:
    settings: type[EnvironmentConfig]
    factory: str

    @property
    def name(self) -> str:
        return str(get_args(self.settings.model_fields["provider"].annotation)[0])

    def open(self, environment: Environment) -> Provider:
        module, _, function = self.factory.partition(":")
        build = cast("Callable[[Environment], Provider]",
                     getattr(importlib.import_module(module), function))
        return build(environment)


BACKENDS: tuple[Backend, ...] = (
    Backend(LocalSettings, "spectral.providers.local.open:local_provider"),
    Backend(PgBackRestSettings, "spectral.providers.pgbackrest.open:pgbackrest_provider"),
    Backend(SupabaseSettings, "spectral.providers.supabase.open:supabase_provider"),
    Backend(DsnSettings, "spectral.providers.dsn.provider:dsn_provider"),
)
PROVIDERS: dict[str, Backend] = {b.name: b for b in BACKENDS}


def _provider_of(value: Any) -> str | None:
    """The backend an [environments.<name>] table is for: its `provider`. A `local` table with
    a dsn names a database spectral does not run (as it always has): a bare DSN."""
    if not isinstance(value, dict):
        return backend(value).name if isinstance(value, EnvironmentConfig) else None
    provider = value.get("provider")
    if provider == "local" and value.get("dsn") is not None:
        return "dsn"
    return provider if isinstance(provider, str) else None


def backend(settings: EnvironmentConfig) -> Backend:
    """The backend whose settings these are."""
    return next(b for b in BACKENDS if type(settings) is b.settings)


def has_provider(settings: EnvironmentConfig) -> bool:
    """Whether the environment has backups spectral can reach (a bare DSN has none)."""
    return backend(settings).name != "dsn"


def open_provider(environment: Environment) -> Provider:
    """The environment's provider, from its backend's factory."""
    return backend(environment.config).open(environment)


if TYPE_CHECKING:
    AnyEnvironment = EnvironmentConfig
else:
    AnyEnvironment = Annotated[
        Union[tuple(Annotated[b.settings, Tag(b.name)] for b in BACKENDS)],  # noqa: UP007
        Discriminator(_provider_of, custom_error_type="unknown_kind",
                      custom_error_message="provider: expected one of "
                                           + ", ".join(map(repr, PROVIDERS)))]
