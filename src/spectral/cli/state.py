"""What every command gets: the global options and the lazily loaded configuration."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import typer

from spectral.cli.outputs import schema_of, stamped
from spectral.errors import RefusedError
from spectral.redact import redact, redact_obj

if TYPE_CHECKING:
    from rich.console import Console

    from spectral.config.models import SpectralConfig
    from spectral.environment import Environment


@dataclass
class AppState:
    config_path: Path | None = None
    env: str | None = None
    json: bool = False
    debug: bool = False
    command: str = ""                 # the running command's path, for its output's schema
    _config: SpectralConfig | None = field(default=None, repr=False)

    @property
    def config(self) -> SpectralConfig:
        if self._config is None:
            from spectral.config.load import load_config

            self._config = load_config(self.config_path)
        return self._config

    def environment(self, report: Callable[[str], None] | None = None) -> Environment:
        """The selected environment (--env, else the configuration's default). What its
        provider reports (waiting for another command's lock) goes to stderr."""
        from spectral.environment import open_environment

        return open_environment(self.config, self.env,
                                report=report or (lambda m: self.notes.print(m)))

    @property
    def notes(self) -> Notes:
        """Plain lines on stderr: what a running step reports (no rich: a `--json` drill then
        never imports it)."""
        return Notes()

    @property
    def out(self) -> Console:
        from rich.console import Console

        return Console(highlight=False, soft_wrap=True, width=_width(sys.stdout))

    @property
    def err(self) -> Console:
        from rich.console import Console

        return Console(stderr=True, highlight=False, width=_width(sys.stderr))

    def emit(self, data: Any, human: Callable[[Console], None], schema: str | None = None) -> None:
        """Print `data` as JSON with --json (with the `schema_version` of the command's
        published schema, cli/outputs.py), else call `human`. Both paths are redacted."""
        if self.json:
            data = stamped(data, schema or schema_of(self.command))
            sys.stdout.write(json.dumps(redact_obj(data), indent=2, default=str) + "\n")
        else:
            from spectral.cli.console import RedactingConsole

            human(RedactingConsole(highlight=False, soft_wrap=True, width=_width(sys.stdout)))


class Lines(Protocol):
    """Where a command's lines for a person go: a rich Console, or Notes."""

    def print(self, text: str, /) -> None: ...


class Notes:
    """Lines on stderr as written (a rich Console would read `[...]` in them as markup)."""

    def print(self, text: str) -> None:
        sys.stderr.write(f"{text}\n")
        sys.stderr.flush()


def _width(stream: Any) -> int | None:
    """A terminal's own width; anything else (a log, a pipe, CI) gets whole lines: ids, paths
    and times are what people grep, so nothing is wrapped or cut with an ellipsis."""
    try:
        return None if stream.isatty() else 100_000
    except (AttributeError, ValueError):
        return 100_000


class CliConfirmer:
    """--yes answers for automation; otherwise ask on a terminal, and refuse without one."""

    def __init__(self, yes: bool, err: Lines) -> None:
        self.yes = yes
        self.err = err

    def confirm(self, question: str, details: list[str]) -> bool:
        for line in details:
            self.err.print(f"  - {redact(line)}")
        if self.yes:
            return True
        if not sys.stdin.isatty():
            raise RefusedError(f"not confirmed: stdin is not a terminal to ask \"{question}\"; "
                               f"nothing was changed", hint="--yes confirms non-interactively")
        return bool(typer.confirm(question, default=False, err=True))

    def perform(self, summary: str, steps: list[str]) -> None:
        """Hand a person the steps only they can do (a dashboard click)."""
        self.err.print(f"now, {summary}:")
        for number, step in enumerate(steps, start=1):
            self.err.print(f"  {number}. {redact(step)}")


def state(ctx: typer.Context) -> AppState:
    obj = ctx.find_root().obj
    assert isinstance(obj, AppState)
    obj.command = ctx.command_path
    return obj
