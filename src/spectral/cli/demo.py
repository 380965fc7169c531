"""`spectral demo`: the main job on the embedded default (library: spectral.demo)."""

from __future__ import annotations

import sys

import typer

from spectral.cli.backup_cmds import restore_progress
from spectral.cli.drill_cmds import print_drill
from spectral.cli.progress import seed_progress
from spectral.cli.state import AppState


def run_demo(st: AppState, scale: int) -> None:
    from spectral.demo import run_demo as demo

    def say(message: str) -> None:
        if not st.json:
            st.err.print(f"demo: {message}")

    show = not st.json and sys.stderr.isatty()
    result = demo(st.environment(), scale=scale, report=say,
                  seed_progress=lambda: seed_progress(scale, enabled=show),
                  restore_progress=lambda: restore_progress(show))
    st.emit(result.to_json(), lambda c: print_drill(c, result))
    raise typer.Exit(result.outcome.exit_code)
