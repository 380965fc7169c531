"""Serialising work on one environment across processes.

- The operation lock: restores, backups, drills, expiry and undo of one environment run one at
  a time. A second one waits, saying who holds it (`--no-wait` refuses at once). Re-entrant
  within a process (a drill restores; a playbook drills).
- Cluster users: every command that needs the environment's server holds a shared lock while it
  uses it; the server a command started for itself is stopped by the last user out, never under
  another command's feet."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from spectral.errors import RefusedError

_held: dict[str, int] = {}          # lock path -> depth, in this process
_guard = threading.Lock()
WAIT_DEFAULT = True


def _holder(path: Path) -> str:
    try:
        d = json.loads(path.with_suffix(".holder").read_text())
        return f"pid {d['pid']} ({d['what']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another spectral process"


@contextlib.contextmanager
def operation_lock(state_dir: Path, what: str, *, wait: bool | None = None,
                   report: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the environment's operation lock for the block."""
    path = state_dir / "operation.lock"
    key = str(path)
    with _guard:
        depth = _held.get(key, 0)
        if depth:
            _held[key] = depth + 1
    if depth:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _holder(path)
            if not (WAIT_DEFAULT if wait is None else wait):
                raise RefusedError(f"{who} is working on this environment; not waiting "
                                   f"(--no-wait)", hint="run again when it has finished") from None
            if report:
                report(f"waiting for {who} to finish with this environment")
            fcntl.flock(fd, fcntl.LOCK_EX)
        path.with_suffix(".holder").write_text(json.dumps({"pid": os.getpid(), "what": what}))
        with _guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _guard:
                _held.pop(key, None)
            path.with_suffix(".holder").unlink(missing_ok=True)
    finally:
        os.close(fd)


class Users:
    """A shared lock held by each command using the server; `last_out` tells the one leaving
    whether nobody else holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def enter(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_SH)

    def leave_last(self) -> bool:
        """Release; True when this was the last user (the lock could be taken exclusively)."""
        assert self.fd is not None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(self.fd)
            self.fd = None
