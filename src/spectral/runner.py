"""One way to run a program: always a timeout, the whole process group killed on timeout or
interrupt, stderr kept for the error message, and optionally as another (unprivileged) user."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from spectral.errors import CommandError
from spectral.redact import redact

log = logging.getLogger("spectral.run")


@dataclass(frozen=True)
class RunAs:
    """An operating-system identity to run a program as (used when we are root)."""

    user: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


SETPRIV = shutil.which("setpriv")


# Run by /bin/sh between setpriv and the program: if the tool died before setpriv set the
# parent-death signal, the signal will never come (the parent is already someone else), so
# the program must not start at all. Found by the lifecycle test: a kill -9 in that instant
# left a whole pg_basebackup running unguarded.
STILL_OURS = '[ "$PPID" = "$0" ] || exit 125; exec "$@"'


def die_with_parent(argv: list[str]) -> list[str]:
    """Make a helper program die when the tool dies, even by SIGKILL (which runs no clean-up):
    util-linux's setpriv sets the parent-death signal, a shell checks that the parent is still
    this process, and then the program runs."""
    if not SETPRIV:
        return argv
    return [SETPRIV, "--pdeathsig", "KILL", "--", "/bin/sh", "-c", STILL_OURS,
            str(os.getpid()), *argv]


def spawn(argv: list[str], *, run_as: RunAs | None, stdin: int | IO[Any] | None,
          stdout: int | IO[Any] | None, stderr: int | IO[Any] | None, env: dict[str, str],
          cwd: Path | None, bound: bool = False) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session (so its whole group can be killed), as `run_as` if given.
    `bound`: the program must not outlive this process (helpers; never a server)."""
    if bound:
        argv = die_with_parent(argv)
    # argv is built by pure functions and never goes through a shell
    return subprocess.Popen(
        argv, stdin=stdin, stdout=stdout, stderr=stderr, env=env, cwd=cwd,
        start_new_session=True,
        user=run_as.uid if run_as else None, group=run_as.gid if run_as else None,
        extra_groups=[] if run_as else None)


# A watchdog for programs that fork helpers of their own (pg_basebackup's WAL streamer): the
# parent-death signal reaches only the program itself, so this process, which gets SIGTERM when
# the tool dies (by any signal, SIGKILL included), kills the program's whole process group. It
# is started, and ready, before the program, so there is no moment in which the program runs
# unguarded; it learns the group from its standard input.
WATCHDOG = """
import os, signal, sys
group = None
def fire(*_):
    if group:
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            pass
    os._exit(0)
signal.signal(signal.SIGTERM, fire)
if os.getppid() != int(sys.argv[1]):
    fire()
print("ready", flush=True)
line = sys.stdin.readline()
if not line.strip():
    fire()
group = int(line)
if os.getppid() != int(sys.argv[1]):
    fire()
signal.pause()
"""


def start_watchdog() -> subprocess.Popen[bytes] | None:
    """Start the watchdog and wait until it guards (its SIGTERM handler is in place)."""
    if SETPRIV is None:
        return None
    import sys

    # -I -S: no site-packages, no .pth files, no environment (it needs os, signal and sys
    # only); the interpreter's start is what each guarded program waits for
    dog = subprocess.Popen([SETPRIV, "--pdeathsig", "TERM", "--", sys.executable, "-I", "-S",
                            "-c", WATCHDOG, str(os.getpid())], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    assert dog.stdout is not None
    dog.stdout.readline()
    return dog


def guard(dog: subprocess.Popen[bytes] | None, group: int) -> None:
    if dog is not None and dog.stdin is not None:
        with contextlib.suppress(OSError):
            dog.stdin.write(f"{group}\n".encode())
            dog.stdin.flush()


def stop_watchdog(dog: subprocess.Popen[bytes] | None) -> None:
    if dog is not None:
        with contextlib.suppress(ProcessLookupError):
            dog.kill()
        with contextlib.suppress(Exception):
            dog.wait(timeout=5)
        for stream in (dog.stdin, dog.stdout):
            if stream is not None:
                stream.close()


# Set by `cancelled_by` in the thread whose programs a caller may stop (a restore copying while
# its plan is still being made: local/throwaway.py)
_CANCEL: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "spectral_cancel", default=None)


@contextlib.contextmanager
def cancelled_by(event: threading.Event) -> Iterator[None]:
    """Programs run inside (in this thread) are stopped, their whole group killed, once
    `event` is set, and none starts after it: each then fails with a CommandError."""
    token = _CANCEL.set(event)
    try:
        yield
    finally:
        _CANCEL.reset(token)


def _stop_on(event: threading.Event, proc: subprocess.Popen[bytes],
             finished: threading.Event) -> None:
    while not finished.is_set():
        if event.wait(0.05):
            if proc.poll() is None:
                _kill_group(proc)
            return


def _watch_cancel(proc: subprocess.Popen[bytes]) -> threading.Event | None:
    """While `proc` runs, kill its group when this thread's cancel event is set; set the
    returned event once it has ended."""
    event = _CANCEL.get()
    if event is None:
        return None
    finished = threading.Event()
    threading.Thread(target=_stop_on, args=(event, proc, finished), daemon=True).start()
    return finished


def _ended(finished: threading.Event | None) -> None:
    if finished is not None:
        finished.set()


def child_env(env: dict[str, str] | None, run_as: RunAs | None) -> dict[str, str]:
    base = dict(os.environ)
    if env:
        base.update(env)
    if run_as is not None:
        base["HOME"] = run_as.home
        base["USER"] = base["LOGNAME"] = run_as.user
    base.setdefault("LC_ALL", "C.UTF-8")
    return base


def run(argv: list[str], *, timeout: float, check: bool = True, env: dict[str, str] | None = None,
        run_as: RunAs | None = None, cwd: Path | None = None, input_text: str | None = None,
        stdout_path: Path | None = None, forks: bool = False) -> Completed:
    """Run `argv` to completion within `timeout` seconds.

    Output goes to temporary files, not pipes, so a chatty program can never dead-lock us.
    On timeout or KeyboardInterrupt the program's whole process group is killed; with
    `forks`, also when this process dies without clean-up (see WATCHDOG).
    """
    log.debug("run: %s", redact(" ".join(argv)))
    with tempfile.TemporaryFile() as err_f, contextlib.ExitStack() as stack:
        out_f = (stack.enter_context(open(stdout_path, "wb")) if stdout_path
                 else stack.enter_context(tempfile.TemporaryFile()))
        if shutil.which(argv[0]) is None:   # said plainly, before any wrapper would say it
            raise CommandError(argv, 127, "cannot execute: not found or not executable")
        if (cancel := _CANCEL.get()) is not None and cancel.is_set():
            raise CommandError(argv, None, "cancelled: not started")
        dog = start_watchdog() if forks else None
        stack.callback(stop_watchdog, dog)
        try:
            proc = spawn(argv, run_as=run_as,
                         stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL,
                         stdout=out_f, stderr=err_f, env=child_env(env, run_as), cwd=cwd,
                         bound=True)
        except OSError as exc:  # not found, not executable, not reachable by run_as
            raise CommandError(argv, 127, f"cannot execute: {exc.strerror}") from None
        guard(dog, proc.pid)
        stack.callback(_ended, _watch_cancel(proc))
        timed_out = False
        try:
            if input_text is not None:
                assert proc.stdin is not None
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.write(input_text.encode())
                    proc.stdin.close()
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc)
        except BaseException:
            _kill_group(proc)
            raise
        err_f.seek(0)
        stderr = err_f.read().decode(errors="replace")
        stdout = ""
        if stdout_path is None:
            out_f.seek(0)
            stdout = out_f.read().decode(errors="replace")
    if timed_out:
        raise CommandError(argv, None, stderr, timed_out=True)
    if proc.returncode != 0 and (cancel := _CANCEL.get()) is not None and cancel.is_set():
        raise CommandError(argv, proc.returncode, "cancelled and stopped")
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, stderr or stdout)
    return Completed(argv, proc.returncode, stdout, stderr)


def pipe(producer: list[str], consumer: list[str], *, timeout: float,
         edit: Callable[[IO[bytes], IO[bytes]], None], env: dict[str, str] | None = None,
         cwd: Path | None = None) -> None:
    """`producer | edit | consumer`, both programs bound to this process and killed together on
    timeout, interrupt or failure of either; the first failure is raised with its stderr (the
    consumer's first: a refused statement says more than the broken pipe it causes)."""
    log.debug("pipe: %s | %s", redact(" ".join(producer)), redact(" ".join(consumer)))
    for argv in (producer, consumer):
        if shutil.which(argv[0]) is None:
            raise CommandError(argv, 127, "cannot execute: not found or not executable")
    with tempfile.TemporaryFile() as perr, tempfile.TemporaryFile() as cerr, \
            tempfile.TemporaryFile() as cout:
        environ = child_env(env, None)
        prod = spawn(producer, run_as=None, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                     stderr=perr, env=environ, cwd=cwd, bound=True)
        try:
            cons = spawn(consumer, run_as=None, stdin=subprocess.PIPE, stdout=cout,
                         stderr=cerr, env=environ, cwd=cwd, bound=True)
        except BaseException:
            _kill_group(prod)
            raise
        failure: list[BaseException] = []

        def pump() -> None:
            assert prod.stdout is not None and cons.stdin is not None
            try:
                edit(prod.stdout, cons.stdin)
            except (BrokenPipeError, OSError):
                pass
            except BaseException as exc:
                failure.append(exc)
            finally:
                with contextlib.suppress(OSError):
                    cons.stdin.close()
                with contextlib.suppress(OSError):
                    prod.stdout.close()

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        try:
            for proc in (cons, prod):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(cons)
            _kill_group(prod)
            raise CommandError(consumer, None, "timed out", timed_out=True) from None
        except BaseException:
            _kill_group(cons)
            _kill_group(prod)
            raise
        if failure:
            raise failure[0]
        for argv, proc, err in ((consumer, cons, cerr), (producer, prod, perr)):
            if proc.returncode != 0:
                err.seek(0)
                raise CommandError(argv, proc.returncode, err.read().decode(errors="replace"))
