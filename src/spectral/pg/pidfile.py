"""postmaster.pid, the lock file of a data directory, and what it says about the server that
wrote it: its status line ("stopping" while it shuts down), and whether it is stale after a
kill -9. https://www.postgresql.org/docs/current/server-start.html"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from spectral.errors import ClusterError
from spectral.waits import WaitTimeout, wait_until

STATUS_LINE = 7    # pid, data dir, start time, port, socket dir, listen address, shmem, status


def status(lines: list[str]) -> str | None:
    """The postmaster's status line: starting, ready, standby or stopping."""
    return lines[STATUS_LINE].strip() if len(lines) > STATUS_LINE else None


def shmem_id(lines: list[str]) -> int | None:
    """The System V shared memory id from the line "key id"."""
    try:
        return int(lines[6].split()[1])
    except (IndexError, ValueError):
        return None


def shmem_attached(shmid: int) -> bool:
    """Whether any process is attached to the System V segment (/proc/sysvipc/shm's nattch),
    what PostgreSQL's PGSharedMemoryIsInUse asks before it starts on a data directory."""
    try:
        rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return False
    for row in rows:
        fields = row.split()
        if len(fields) > 6 and fields[1] == str(shmid):
            return int(fields[6]) > 0
    return False


def pid_exists(pid: int) -> bool:
    """Whether the pid exists at all, a zombie included (what PostgreSQL's kill(pid, 0) sees)."""
    return Path(f"/proc/{pid}").exists()


def clear_stale(data_dir: Path, serves: Callable[[int], bool], timeout: float) -> None:
    """After kill -9 of the postmaster its postmaster.pid stays. PostgreSQL refuses to start
    while any process has that pid ("lock file already exists"): a killed process stays a
    zombie until its parent reaps it (for a server whose command has ended that is init,
    possibly many seconds later), and a pid can be reused. It refuses too while a child of the
    killed server still holds the old shared memory. So: reap it if it is our child, wait until
    none of its processes is attached to the old shared memory (PostgreSQL's own test), and
    then, if the pid is still taken (a zombie, another program), the lock file is stale and
    removed; otherwise PostgreSQL reads it and cleans up the old segment itself. A server that
    serves this data directory is never touched."""
    lock = data_dir / "postmaster.pid"
    pid, lines = 0, []

    def settled() -> bool:
        nonlocal pid, lines
        try:
            lines = lock.read_text().splitlines()
            pid = int(lines[0].strip())
        except FileNotFoundError:
            return True
        except (OSError, ValueError, IndexError):
            return False     # being written by a server starting right now
        if serves(pid):
            raise ClusterError(f"a server (pid {pid}) already runs in {data_dir}")
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)     # our own child: reaped here
        shmid = shmem_id(lines)
        return shmid is None or not shmem_attached(shmid)

    try:
        wait_until(settled, timeout=timeout, interval=0.05, max_interval=0.5,
                   what=f"the processes of the server killed in {data_dir} to exit")
    except WaitTimeout:
        return       # PostgreSQL's own refusal, quoted by the start, says why
    if pid and pid_exists(pid) and not serves(pid):
        for stale in (socket_lock(lines), lock):   # the socket's lock names the same pid
            if stale is not None and _names(stale, pid):
                stale.unlink(missing_ok=True)


def socket_lock(lines: list[str]) -> Path | None:
    """The lock file of the server's Unix socket (`.s.PGSQL.<port>.lock` in its first socket
    directory), which PostgreSQL checks the same way."""
    if len(lines) < 5 or not lines[4].strip() or not lines[3].strip().isdigit():
        return None
    return Path(lines[4].strip()) / f".s.PGSQL.{lines[3].strip()}.lock"


def _names(lock: Path, pid: int) -> bool:
    try:
        return int(lock.read_text().splitlines()[0].strip()) == pid
    except (OSError, ValueError, IndexError):
        return False
