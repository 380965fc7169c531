"""The Supabase provider from an opened environment (the registry's factory for 'supabase')."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from spectral.config.secrets import resolve_dsn, resolve_secret
from spectral.providers.supabase.client import ManagementClient
from spectral.providers.supabase.provider import SupabaseProvider
from spectral.providers.supabase.settings import SupabaseSettings

if TYPE_CHECKING:
    from spectral.environment import Environment


class _OnFirstCall:
    """The Management API client, made (and its token resolved) on its first use: a command
    that only reads the database needs no token."""

    def __init__(self, settings: SupabaseSettings, base_dir: Path) -> None:
        self._settings, self._base_dir = settings, base_dir
        self._client: ManagementClient | None = None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            token = resolve_secret(self._settings.access_token, base_dir=self._base_dir)
            self._client = ManagementClient(token, self._settings.api_url)
        return getattr(self._client, name)


def supabase_provider(environment: Environment) -> SupabaseProvider:
    settings = environment.config
    assert isinstance(settings, SupabaseSettings)
    base_dir = environment.spectral.base_dir
    client = cast("ManagementClient", _OnFirstCall(settings, base_dir))
    return SupabaseProvider(client, settings.project_ref,
                            resolve_dsn(settings.dsn, base_dir), tuple(settings.schemas),
                            environment.state_dir, environment.report)
