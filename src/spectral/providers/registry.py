"""The one place that maps a configured provider name to its class."""

from __future__ import annotations

from spectral.config.models import EnvironmentConfig, ProviderKind, SpectralConfig
from spectral.providers.base import Provider, Report


def open_provider(cfg: SpectralConfig, name: str, env: EnvironmentConfig,
                  report: Report | None = None) -> Provider | None:
    """The environment's provider; None for an environment that only names a database."""
    if env.provider is ProviderKind.SUPABASE:
        from spectral.providers.supabase.open import supabase_provider

        return supabase_provider(cfg, name, env, report)
    if env.managed_cluster:
        from spectral.ledger.open import open_ledger
        from spectral.providers.managed import managed_environment

        local = managed_environment(cfg, name, env)
        if env.provider is ProviderKind.PGBACKREST:
            from spectral.providers.pgbackrest.environment import PgBackRestEnvironment
            from spectral.providers.pgbackrest.provider import PgBackRestProvider

            assert isinstance(local, PgBackRestEnvironment)
            return PgBackRestProvider(local, report, open_ledger(cfg, name))
        from spectral.providers.local.provider import LocalProvider

        return LocalProvider(local, report, open_ledger(cfg, name))
    return None


def has_provider(env: EnvironmentConfig) -> bool:
    return env.provider is ProviderKind.SUPABASE or env.managed_cluster
