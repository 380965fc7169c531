"""Where an exit goes: the target given as another environment, a secret reference or a DSN,
and how it is shown (never with its password)."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict

from spectral.config.models import SpectralConfig
from spectral.config.secrets import is_secret_ref, resolve_secret
from spectral.errors import UsageError
from spectral.redact import register_secret

__all__ = ["describe_dsn", "resolve_exit_target"]


def resolve_exit_target(cfg: SpectralConfig, value: str) -> str:
    """Another environment's DSN, a secret reference's value, or the DSN itself; a secret
    from now on either way (it may hold a password)."""
    if value in cfg.environments:
        env = cfg.environments[value]
        if env.dsn is None:
            raise UsageError(f"environment {value!r} has no dsn to exit into (its database is "
                             f"a cluster spectral runs)",
                             hint=f"spectral --env {value} local up, then pass the dsn that "
                                  f"`spectral --env {value} local status` prints")
        value = env.dsn
    dsn = resolve_secret(value, base_dir=cfg.base_dir) if is_secret_ref(value) else value
    register_secret(dsn)
    return dsn


def describe_dsn(dsn: str) -> str:
    """user@host:port/db, never a password."""
    parts = conninfo_to_dict(dsn)
    return (f"{parts.get('user', '?')}@{parts.get('host', 'localhost')}:"
            f"{parts.get('port', 5432)}/{parts.get('dbname', '?')}")
