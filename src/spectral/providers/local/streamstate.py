"""What a `dr wal stream` supervisor records about itself, how another command tells whether it
is alive (by its recorded pid and that process's start time, read in /proc), and the
synchronous setting it owns.

A synchronous standby that is gone makes every commit on the source wait. The supervisor
removes its setting when it stops; one killed with SIGKILL cannot, so every command that opens
the environment's server removes it when the recorded supervisor is dead."""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import psycopg

from spectral.durable import write_atomic
from spectral.errors import ConnectError
from spectral.pg.cluster import Cluster
from spectral.waits import WaitTimeout, wait_until

APPLICATION = "spectral_stream"
STATE_VERSION = 2


class StreamState(StrEnum):
    STARTING = "starting"
    STREAMING = "streaming"                  # pg_receivewal has run for a while
    RESTARTING = "restarting"                # pg_receivewal exited; waiting out the backoff
    WAITING_FOR_SERVER = "waiting for the server"   # down, restarting, or in recovery


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def process_start(pid: int) -> str | None:
    """The start time of a live process (clock ticks since boot, from /proc/<pid>/stat): with
    the pid it names one process, never a later one that reused the pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    if not fields or fields[0] in ("Z", "X"):
        return None
    return fields[19] if len(fields) > 19 else None


@dataclass
class StreamStatus:
    pid: int | None
    supervisor_pid: int
    synchronous: bool
    started_at: str
    restarts: int
    last_exit: str | None = None
    failing: bool = False           # the last run ended within seconds of its start
    state: StreamState = StreamState.STARTING
    state_since: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    supervisor_start: str | None = None
    version: int = STATE_VERSION

    @classmethod
    def new(cls, synchronous: bool) -> StreamStatus:
        pid = os.getpid()
        return cls(None, pid, synchronous, _now(), 0, supervisor_start=process_start(pid))

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "state": str(self.state)}


def status_file(stream_dir: Path) -> Path:
    return stream_dir / "supervisor.json"


def record(stream_dir: Path, status: StreamStatus, state: StreamState | None = None) -> None:
    if state is not None and state is not status.state:
        status.state, status.state_since = state, _now()
    status.updated_at = _now()
    write_atomic(status_file(stream_dir), json.dumps(status.to_json()) + "\n")


def _read(stream_dir: Path) -> dict[str, Any] | None:
    try:
        d = json.loads(status_file(stream_dir).read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def _alive(d: dict[str, Any]) -> bool:
    try:
        pid = int(d["supervisor_pid"])
    except (KeyError, TypeError, ValueError):
        return False
    started = process_start(pid)
    recorded = d.get("supervisor_start")
    return started is not None and (recorded is None or str(recorded) == started)


def supervisor_alive(stream_dir: Path) -> bool:
    d = _read(stream_dir)
    return d is not None and _alive(d)


def supervisor_state(stream_dir: Path) -> dict[str, Any] | None:
    """What the supervisor last recorded (state and since when, restarts, why pg_receivewal
    last exited) and whether that supervisor is alive now."""
    d = _read(stream_dir)
    if d is not None:
        d["alive"] = _alive(d)
    return d


def set_synchronous(cluster: Cluster, on: bool) -> None:
    with cluster.connect() as conn:
        if on:
            row = conn.execute("show synchronous_standby_names").fetchone()
            if row is not None and row[0] == APPLICATION:
                return
            conn.execute(f"alter system set synchronous_standby_names = '{APPLICATION}'")
        else:
            conn.execute("alter system reset synchronous_standby_names")
        conn.execute("select pg_reload_conf()")


def clear_synchronous_file(data_dir: Path) -> bool:
    """Remove our synchronous standby from postgresql.auto.conf of a stopped server."""
    path = data_dir / "postgresql.auto.conf"
    try:
        lines = path.read_text().splitlines(keepends=True)
    except OSError:
        return False
    kept = [ln for ln in lines if not (ln.split("=", 1)[0].strip() == "synchronous_standby_names"
                                       and APPLICATION in ln)]
    if kept == lines:
        return False
    with open(path, "w") as f:     # in place: the file keeps its owner, the server's user
        f.write("".join(kept))
        f.flush()
        os.fsync(f.fileno())
    return True


OURS_SQL = """
select s.setting, (select count(*) from pg_stat_activity where wait_event = 'SyncRep')
from pg_settings s
where s.name = 'synchronous_standby_names' and s.sourcefile like '%postgresql.auto.conf'
"""


def release_dead_synchronous(cluster: Cluster, stream_dir: Path) -> str | None:
    """When the synchronous setting spectral made is in force but the supervisor that made it
    is dead, remove it, so that commits stop waiting for a standby that will not come; a
    sentence saying what was done, or None. A server that is not running has it removed from
    its configuration file before it starts."""
    if supervisor_alive(stream_dir):
        return None
    who = _dead_supervisor(stream_dir)
    if not cluster.is_running():
        if clear_synchronous_file(cluster.data_dir):
            return f"removed synchronous_standby_names left by a dead {who}"
        return None
    try:
        with cluster.connect() as conn:
            row = conn.execute(OURS_SQL).fetchone()
            if row is None or row[0] != APPLICATION:
                return None
            conn.execute("alter system reset synchronous_standby_names")
            conn.execute("select pg_reload_conf()")
        _wait_released(cluster)
    except (ConnectError, psycopg.Error):
        return None     # not reachable now (starting up): the command's own work says so
    return (f"commits are blocked: synchronous stream is dead ({who}; {row[1]} commit(s) "
            f"waiting); removed synchronous_standby_names, commits no longer wait")


def _dead_supervisor(stream_dir: Path) -> str:
    d = _read(stream_dir)
    pid = d.get("supervisor_pid") if d else None
    return f"`dr wal stream --synchronous`, pid {pid}" if pid else "`dr wal stream --synchronous`"


def _wait_released(cluster: Cluster) -> None:
    """pg_reload_conf only signals: wait until a new session sees the setting gone (the
    checkpointer then releases the waiting commits)."""
    def released() -> bool:
        with cluster.connect() as conn:
            row = conn.execute("select current_setting('synchronous_standby_names'), "
                               "(select count(*) from pg_stat_activity "
                               "where wait_event = 'SyncRep')").fetchone()
        return row is not None and row[0] == "" and int(row[1]) == 0

    with contextlib.suppress(WaitTimeout):
        wait_until(released, timeout=10, max_interval=0.2, what="commits released")
