"""The `spectral` command tree. Each command parses, calls one library function, renders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import typer.core

from spectral import __version__
from spectral.cli import db_cmds, dr_cmds, local_cmds
from spectral.cli.state import AppState, state
from spectral.errors import RefusedError


def _metavar(self: typer.core._TyperParameter, ctx: Any) -> str:
    """Help shows what a value is (TARGET-TIME, JOBS), not its Python type (<str>, <int range>);
    a choice still lists its choices."""
    if self.type_descriptor.is_choice:
        return _TYPE_METAVAR(self, ctx)
    return str(self.metavar or (self.name or "value").upper().replace("_", "-"))


_TYPE_METAVAR = typer.core._TyperParameter.display_type
typer.core._TyperParameter.display_type = _metavar  # type: ignore[method-assign]

app = typer.Typer(
    name="spectral", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Spectral DR: the disaster-recovery runbook for PostgreSQL, executable, measured and "
         "logged. Exit codes: 0 ok, 1 a check or drill failed, 2 usage or configuration error, "
         "3 could not verify.")
app.add_typer(local_cmds.app, name="local")
app.add_typer(db_cmds.app, name="db")
app.add_typer(dr_cmds.app, name="dr")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"spectral {__version__}")
        raise typer.Exit()


@app.callback()
def _globals(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", help="Configuration file (default: ./spectral.toml, else the embedded "
                               "default with one local environment).", dir_okay=False),
    env: str | None = typer.Option(None, "--env", help="Environment name (default: the "
                                                       "configuration's default_environment)."),
    json_out: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Refuse at once, instead of waiting, "
                                 "when another spectral process is restoring, backing up or "
                                 "drilling the same environment."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    ctx.obj = AppState(config_path=config, env=env, json=json_out, debug=debug)
    if no_wait:
        from spectral import envlock

        envlock.WAIT_DEFAULT = False


@app.command("init")
def init_cmd(
    ctx: typer.Context,
    path: Path = typer.Option(Path("spectral.toml"), "--path", help="Where to write the file."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented starter configuration (a local and a Supabase environment)."""
    from spectral.config.starter import starter
    from spectral.durable import write_atomic

    st = state(ctx)
    if path.exists() and not force:
        raise RefusedError(f"{path} already exists; not overwriting it", hint="--force overwrites")
    write_atomic(path, starter())
    st.emit({"written": str(path)},
            lambda c: c.print(f"wrote {path}: fill in the production environment's references"))


@app.command("demo")
def demo_cmd(
    ctx: typer.Context,
    scale: int = typer.Option(1, "--scale", min=1, help="Seed scale (1 is about 14 MB of "
                                                         "tables and their indexes)."),
) -> None:
    """The main job on the embedded default: a functional restore drill on a real PostgreSQL,
    seeding and backing up the local environment first when needed. The cluster is stopped
    again if this command started it."""
    from spectral.cli.demo import run_demo

    run_demo(state(ctx), scale)
