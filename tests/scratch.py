"""Where the tests' clusters, backups and archives live: a memory file system when the machine
has one with room (/dev/shm), else /tmp. A run writes ~55 GB through ext4 otherwise, and most of
its system time is the kernel copying, allocating and (with `discard`) trimming those blocks; on
tmpfs a copy is a memory copy and a removal is free, so a passing test's folder is removed at its
end (tests/conftest.py) and a run holds only what its running tests use.

`SPECTRAL_TEST_TMPDIR` names another folder (e.g. to keep everything on disk)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

ENV = "SPECTRAL_TEST_TMPDIR"
SHM = Path("/dev/shm")
ROOM = 8 << 30      # what a run on three workers holds at most, with a margin


def _tmpfs(path: Path) -> bool:
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return False
    return any(len(f := line.split()) > 2 and f[1] == str(path) and f[2] == "tmpfs"
               for line in mounts)


@functools.cache
def root() -> Path:
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    if _tmpfs(SHM) and os.access(SHM, os.W_OK):
        st = os.statvfs(SHM)
        if st.f_bavail * st.f_frsize >= ROOM:
            return SHM
    return Path("/tmp")


def in_memory() -> bool:
    return _tmpfs(root())
