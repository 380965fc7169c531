"""Open an environment's database: its own cluster for a managed local environment (started
for the command if needed), or the configured DSN."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from spectral.config.models import EnvironmentConfig, SpectralConfig
from spectral.config.secrets import resolve_dsn
from spectral.errors import UsageError
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect
from spectral.providers.local.environment import LocalEnvironment


@dataclass(frozen=True)
class Target:
    name: str
    env: EnvironmentConfig
    conninfo: str
    cluster: Cluster | None


def local_environment(cfg: SpectralConfig, env_name: str | None) -> LocalEnvironment:
    name, env = cfg.environment(env_name)
    if env.provider == "supabase":
        raise UsageError(f"environment {name!r} is on Supabase, which keeps its own backups "
                         f"and WAL: this command is for environments spectral runs",
                         hint="on Supabase: spectral dr backups, dr drill functional (guided), "
                              "dr playbook run, dr activate-pitr")
    if not env.managed_cluster:
        raise UsageError(f"environment {name!r} is not a local environment run by spectral "
                         f"(provider {env.provider}{', with a dsn' if env.dsn else ''})")
    from spectral.providers.managed import managed_environment

    return managed_environment(cfg, name, env)


@contextmanager
def open_target(cfg: SpectralConfig, env_name: str | None) -> Iterator[Target]:
    name, env = cfg.environment(env_name)
    if env.managed_cluster:
        with local_environment(cfg, name).session() as cluster:
            yield Target(name, env, cluster.conninfo(), cluster)
        return
    assert env.dsn is not None
    dsn = resolve_dsn(env.dsn, cfg.base_dir)
    with connect(dsn) as conn:
        conn.execute("select 1")
    yield Target(name, env, dsn, None)
