"""Entry point: global options anywhere on the line, one place mapping errors to exit codes."""

from __future__ import annotations

import logging
import sys
from typing import Any, NoReturn

from spectral.errors import ExitCode, SpectralError
from spectral.redact import redact

FLAGS = {"--json", "--debug", "--no-wait"}
VALUED = {"--config", "--env"}


def hoist_globals(argv: list[str]) -> list[str]:
    """Move global options to the front so `spectral local status --json` works like
    `spectral --json local status`. Nothing after `--` is touched."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        if arg in FLAGS:
            front.append(arg)
        elif arg in VALUED and i + 1 < len(argv):
            front += [arg, argv[i + 1]]
            i += 1
        elif any(arg.startswith(v + "=") for v in VALUED):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


class _RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True


def _setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RedactFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("spectral")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


JSON_ERRORS = False     # --json: an error is one JSON object on stderr


def _fail(message: str, code: int, hint: str | None = None) -> int:
    if JSON_ERRORS:
        import json

        from spectral.cli.outputs import ERROR, KEY

        sys.stderr.write(json.dumps({KEY: ERROR, "error": redact(message), "hint": redact(hint)
                                     if hint else None, "exit_code": int(code)}) + "\n")
        return code
    sys.stderr.write(f"spectral: error: {redact(message)}\n")
    if hint:
        sys.stderr.write(f"  hint: {redact(hint)}\n")
    return code


def _traceback() -> None:
    import traceback

    sys.stderr.write(redact(traceback.format_exc()))


def run_cli(argv: list[str]) -> int:
    from spectral.cli.app import app
    from spectral.cli.tree import command_tree

    global JSON_ERRORS
    argv = hoist_globals(argv)
    debug = "--debug" in argv
    JSON_ERRORS = "--json" in argv
    if not debug:           # third-party warnings are not the user's business; --debug shows them
        import warnings

        warnings.simplefilter("ignore")
    _setup_logging(debug)
    try:
        # Without standalone mode Typer returns an exit code instead of raising Exit, and turns
        # KeyboardInterrupt into 130 (after the command's own cleanup has run). Only the
        # commands on the line's path are made (cli/tree.py).
        code = command_tree(app)(args=argv, prog_name="spectral", standalone_mode=False)
    except SpectralError as exc:
        if debug:   # the traceback, and still the documented exit code
            _traceback()
        return _fail(exc.message, int(exc.exit_code), exc.hint)
    except KeyboardInterrupt:
        return _fail("interrupted; everything this command started was stopped", 130)
    except Exception as exc:
        # Typer vendors click; its exceptions are matched by shape, not by import.
        kind = type(exc).__name__
        if kind == "Exit":
            return int(getattr(exc, "exit_code", 0))
        if kind == "Abort":
            return _fail("aborted", 130)
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            return _fail(exc.format_message(), ExitCode.USAGE)
        denied = _denied(exc)
        if denied is not None:
            if debug:
                _traceback()
            return _fail(denied, ExitCode.USAGE, "grant the role what the message names, or "
                         "give a connection string of a role that has it")
        lost = _connection_lost(exc)
        if lost is not None:
            if debug:
                _traceback()
            return _fail(lost, ExitCode.COULD_NOT_VERIFY,
                         "the server was stopped or restarted meanwhile; run the command again")
        if debug:
            _traceback()
        return _fail(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the "
                     f"traceback)", ExitCode.COULD_NOT_VERIFY)
    if code == 130:
        return _fail("interrupted; everything this command started was stopped", 130)
    return int(code) if isinstance(code, int) else ExitCode.OK


def _denied(exc: BaseException) -> str | None:
    """PostgreSQL refused the role a privilege (a read-only drill role asked to write, as by
    `dr salvage`): a configuration matter, one line."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return None
    said = " ".join(str(exc).split()) or type(exc).__name__
    return f"the database role lacks a privilege this needs: {redact(said)}"


def _connection_lost(exc: BaseException) -> str | None:
    """A connection PostgreSQL ended under a command (a shutdown, a restart, a terminated
    backend): one line, not an internal error. psycopg is only looked at when it is loaded."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(exc, psycopg.OperationalError):
        return None
    said = " ".join(str(exc).split()) or type(exc).__name__
    return f"a database connection was lost: {redact(said)}"


def main() -> None:
    import gc
    import os
    import signal

    # A command line makes ~1 M objects importing typer, pydantic, psycopg and its own modules,
    # nearly all kept to its end: a collection every 700 allocations walked them again and
    # again (~4% of the instructions to a command's first SQL). Cycles are still collected,
    # 100 000 allocations apart.
    gc.set_threshold(100_000)
    # pydantic looks for plugins in the metadata of every installed distribution when it
    # builds its first validator (~10 ms of each process's start); spectral's own models
    # take none. A value set by the person running spectral is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    # SIGTERM (a cron timeout, systemd stop) unwinds like Ctrl-C, so undo steps run.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    sys.stdout = ReaderMayLeave(sys.stdout)
    leave(run_cli(sys.argv[1:]))


class ReaderMayLeave:
    """Standard output whose reader may go away (`spectral dr log | head -1`): what it did not
    read is dropped and the command ends with its own exit code. Click ended such a command
    with exit 1, the code of a failed check, after it had done its work."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            self._gone()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()

    def _gone(self) -> None:
        """Everything written from now on, and what is still buffered, goes nowhere."""
        import os

        nowhere = os.open(os.devnull, os.O_WRONLY)
        os.dup2(nowhere, self._stream.fileno())
        os.close(nowhere)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def leave(code: int) -> NoReturn:
    """End the process with `code` as the interpreter would, without its teardown: freeing
    every module and object one by one cost ~6% of a command's instructions (15-40 ms) and
    does nothing the operating system does not. What an exit must do is done first: the
    exit handlers (logging's flush, temporary directories' finalizers), the output flushed.
    While a thread other than a daemon still runs, or the output cannot be flushed (a closed
    pipe), the interpreter's own exit does it all, as before."""
    import atexit
    import os
    import threading

    running = [t for t in threading.enumerate()
               if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if running:
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        sys.exit(code)
    os._exit(code)
