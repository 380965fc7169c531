"""`spectral local up | down | status | psql`: the embedded default environment's cluster."""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING

import typer

from spectral.cli.state import state
from spectral.errors import SpectralError

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(no_args_is_help=True, help="Manage the local environment's own PostgreSQL.")


@app.command("up")
def up_cmd(ctx: typer.Context) -> None:
    """Create the local cluster on first use and start it; it keeps running until `down`."""
    from spectral.providers.registry import open_server

    st = state(ctx)
    local = open_server(st.environment())
    created = not local.exists()
    in_place = st.environment().provider.in_place_undo() if not created else None
    if in_place is not None:   # what a killed in-place restore or undo left is put right first
        in_place.recover_if_idle()
        try:                   # and on record (a damaged ledger: the entry waits for its repair)
            st.environment().record_owed()
        except SpectralError as exc:
            st.err.print(f"spectral: not recorded yet: {exc.message}")
    _cluster, started = local.up()
    if local.stream_release:   # a killed synchronous `dr wal stream` had blocked commits
        st.err.print(f"spectral: {local.stream_release}")
    info = local.status()
    info["created"], info["started"] = created, started

    def human(c: Console) -> None:
        verb = "created and started" if created else ("started" if started else "already running")
        c.print(f"{local.name}: {verb}, PostgreSQL {info['server_version']} on port "
                f"{info['port']} (pid {info['pid']})")
        c.print(f"dsn: {info['dsn']}")

    st.emit(info, human)


@app.command("down")
def down_cmd(ctx: typer.Context) -> None:
    """Stop the local cluster (fast shutdown, then immediate). Its data is kept."""
    from spectral.providers.registry import open_server

    st = state(ctx)
    local = open_server(st.environment())
    stopped = local.down()
    st.emit({"environment": local.name, "stopped": stopped},
            lambda c: c.print(f"{local.name}: {'stopped' if stopped else 'was not running'}"))


@app.command("status")
def status_cmd(ctx: typer.Context) -> None:
    """Show whether the local cluster exists and runs, its dsn, server version and size."""
    from spectral.providers.registry import open_server

    st = state(ctx)
    info = open_server(st.environment()).status()

    def human(c: Console) -> None:
        if not info["exists"]:
            c.print(f"{info['environment']}: no cluster yet (spectral local up creates it)")
            return
        state_word = "running" if info["running"] else "stopped"
        c.print(f"{info['environment']}: {state_word}, PostgreSQL {info['server_version']}, "
                f"{info.get('size_of', 'size')} {info['size_bytes'] / 1e6:.1f} MB")
        c.print(f"dsn:      {info['dsn']}")
        c.print(f"data dir: {info['data_dir']}")

    st.emit(info, human)


@app.command("psql", context_settings={"allow_extra_args": True,
                                       "ignore_unknown_options": True})
def psql_cmd(ctx: typer.Context) -> None:
    """Open psql on the local database (extra arguments go to psql, e.g. -- -c 'select 1')."""
    from spectral.providers.registry import open_server

    st = state(ctx)
    local = open_server(st.environment())
    with local.session() as cluster:
        # the connection goes in PG* variables, so every psql argument stays the user's own
        # (-d other, -U someone, -c ...); interactive: no timeout, the person decides
        code = subprocess.run([local.bins.path("psql"), *ctx.args], check=False,
                              env={**os.environ, **libpq_env(cluster.conninfo())}).returncode
    raise typer.Exit(code)


LIBPQ_ENV = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE",
             "password": "PGPASSWORD", "sslmode": "PGSSLMODE"}


def libpq_env(conninfo: str) -> dict[str, str]:
    """The connection string as libpq's environment variables (the child's only)."""
    from psycopg.conninfo import conninfo_to_dict

    return {LIBPQ_ENV[k]: str(v) for k, v in conninfo_to_dict(conninfo).items()
            if k in LIBPQ_ENV and v is not None}
