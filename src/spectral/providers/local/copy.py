"""Copying a backup into a new data directory. `cp -a` is the floor the RTO is measured
against, so the copy is `cp -a` (in-kernel copy_file_range; ownership and modes preserved: the
backup was written by the server user), run in its own process group so an interrupt or
timeout stops it, with progress measured from the destination's size."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from spectral.errors import CommandError
from spectral.runner import child_env, spawn

Progress = Callable[[int], None]


def tree_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def copy_argv(src: Path, dest: Path) -> list[str]:
    return ["cp", "-a", f"{src}/.", str(dest)]


def copy_tree(src: Path, dest: Path, *, progress: Progress | None = None,
              timeout: float = 24 * 3600, interval: float = 0.5) -> None:
    """Copy the contents of `src` into the existing directory `dest`."""
    err = dest.parent / f".{dest.name}.cp-errors"
    with open(err, "wb") as err_f:
        proc = spawn(copy_argv(src, dest), run_as=None, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=err_f, env=child_env(None, None),
                     cwd=dest.parent, bound=True)
        deadline = time.monotonic() + timeout
        try:
            while proc.poll() is None:
                if time.monotonic() > deadline:
                    raise CommandError(copy_argv(src, dest), None, "", timed_out=True)
                if progress:
                    progress(tree_bytes(dest))
                try:
                    proc.wait(timeout=interval)
                except subprocess.TimeoutExpired:
                    continue
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            raise
    text = err.read_text(errors="replace")
    err.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise CommandError(copy_argv(src, dest), proc.returncode, text)
    if progress:
        progress(tree_bytes(dest))
