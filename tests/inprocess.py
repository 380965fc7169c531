"""The command line run inside the test process: the same `run_cli` the `spectral` script calls,
with the environment, working directory and standard streams a subprocess would have had, put
back afterwards. It saves a Python start and every import per call (about half a second, ~400
calls a suite).

What a subprocess is still for (`needs_process`): a command killed on purpose
(`SPECTRAL_TEST_CRASH_AT`), a command whose children write to the terminal (`local psql`),
and everything run with `SPECTRAL_TEST_SUBPROCESS=1` (the whole suite the old way)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

ALWAYS_PROCESS = "SPECTRAL_TEST_SUBPROCESS"
# commands whose own children inherit the terminal, or that replace the process
_PROCESS_COMMANDS = {("local", "psql")}


def needs_process(args: tuple[str, ...], env: dict[str, str]) -> bool:
    if os.environ.get(ALWAYS_PROCESS) == "1" or "SPECTRAL_TEST_CRASH_AT" in env:
        return True
    words = tuple(a for a in args if not a.startswith("-"))
    return any(words[i:i + len(c)] == c for c in _PROCESS_COMMANDS for i in range(len(words)))


class _TimedOut(KeyboardInterrupt):
    """Raised in the command like Ctrl-C (its undo steps run); reported as a timeout."""


@contextlib.contextmanager
def _as_a_process(env: dict[str, str], cwd: Path, out: io.StringIO, err: io.StringIO,
                  timeout: float, fired: list[bool]) -> Iterator[None]:
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    logger = logging.getLogger("spectral")
    saved_log = logger.handlers[:], logger.level, logger.propagate

    def expire(signum: int, frame: FrameType | None) -> None:
        fired.append(True)
        raise _TimedOut()

    saved_alarm = signal.signal(signal.SIGALRM, expire)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.stdin, sys.stdout, sys.stderr = io.StringIO(""), out, err
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, saved_alarm)
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        logger.handlers[:], logger.level, logger.propagate = saved_log


def run(argv0: str, args: tuple[str, ...], cwd: Path, env: dict[str, str],
        timeout: float) -> subprocess.CompletedProcess[str]:
    """`spectral *args` as a subprocess would run it, in this process."""
    from spectral.cli import main

    out, err = io.StringIO(), io.StringIO()
    fired: list[bool] = []
    code: object = None
    try:
        with _as_a_process(env, cwd, out, err, timeout, fired):
            try:
                code = main.run_cli(list(args))
            except SystemExit as exc:
                code = exc.code
    except _TimedOut:
        pass
    finally:
        main.JSON_ERRORS = False
    if fired:   # the command was interrupted like Ctrl-C; a subprocess would have been killed
        raise subprocess.TimeoutExpired([argv0, *args], timeout, out.getvalue(), err.getvalue())
    returncode = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess([argv0, *args], returncode, out.getvalue(),
                                       err.getvalue())
