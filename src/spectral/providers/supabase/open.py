"""Build the Supabase provider for an environment from its configuration."""

from __future__ import annotations

from spectral.config.models import EnvironmentConfig, SpectralConfig
from spectral.config.secrets import resolve_secret
from spectral.providers.base import Report
from spectral.providers.supabase.client import ManagementClient
from spectral.providers.supabase.provider import SupabaseProvider
from spectral.target import resolve_dsn


def supabase_provider(cfg: SpectralConfig, name: str, env: EnvironmentConfig,
                      report: Report | None = None) -> SupabaseProvider:
    assert env.access_token is not None and env.project_ref is not None
    token = resolve_secret(env.access_token, base_dir=cfg.base_dir)
    client = ManagementClient(token, env.api_url)
    return SupabaseProvider(client, env.project_ref, resolve_dsn(cfg, env), tuple(env.schemas),
                            cfg.state_dir(name), report)
