"""The main job on the embedded default (README's first command): a real functional drill on a
real PostgreSQL, creating, seeding and backing up the local environment when needed."""

from __future__ import annotations

import sys

import typer

from spectral.cli.backup_cmds import restore_progress
from spectral.cli.drill_cmds import print_drill
from spectral.cli.progress import seed_progress
from spectral.cli.state import AppState
from spectral.confirm import AssumeYes
from spectral.drills.functional import DrillRequest, run_drill
from spectral.pg.conn import connect
from spectral.providers.local.provider import LocalProvider
from spectral.reseed import reseed
from spectral.target import Target, local_environment


def _world_is_empty(conninfo: str) -> bool:
    with connect(conninfo) as conn:
        row = conn.execute("select to_regclass('core.orgs')").fetchone()
        if row is None or row[0] is None:
            return True
        row = conn.execute("select exists (select 1 from core.orgs)").fetchone()
    return not (row and row[0])


def run_demo(st: AppState, scale: int) -> None:
    local = local_environment(st.config, st.env)
    name, env = st.config.environment(local.name)
    def say(message: str) -> None:
        if not st.json:
            st.err.print(f"demo: {message}")

    say(f"environment {name}: embedded PostgreSQL {local.bins.version} under "
        f"{local.paths.state_dir}")
    provider = LocalProvider(local)
    with local.session() as cluster:
        if _world_is_empty(cluster.conninfo()):
            say(f"seeding the reference database (scale {scale})")
            target = Target(name, env, cluster.conninfo(), cluster)
            show = not st.json and sys.stderr.isatty()
            with seed_progress(scale, enabled=show) as seed_bar:
                reseed(target, AssumeYes(), scale=scale, progress=seed_bar)
        if not provider.backups():
            say("taking the first base backup")
            provider.backup()
        say("running a functional drill")
        with restore_progress(not st.json and sys.stderr.isatty()) as progress:
            result = run_drill(name, env, local, DrillRequest(), report=say, progress=progress)
    st.emit(result.to_json(), lambda c: print_drill(c, result))
    raise typer.Exit(result.outcome.exit_code)
