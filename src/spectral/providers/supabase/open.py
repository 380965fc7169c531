"""The Supabase provider from an opened environment (the registry's factory for 'supabase')."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spectral.config.secrets import resolve_dsn, resolve_secret
from spectral.providers.supabase.client import ManagementClient
from spectral.providers.supabase.provider import SupabaseProvider
from spectral.providers.supabase.settings import SupabaseSettings

if TYPE_CHECKING:
    from spectral.environment import Environment


def supabase_provider(environment: Environment) -> SupabaseProvider:
    settings = environment.config
    assert isinstance(settings, SupabaseSettings)
    base_dir = environment.spectral.base_dir
    client = ManagementClient(resolve_secret(settings.access_token, base_dir=base_dir),
                              settings.api_url)
    return SupabaseProvider(client, settings.project_ref, resolve_dsn(settings.dsn, base_dir),
                            tuple(settings.schemas), environment.state_dir, environment.report)
