"""Continuous WAL streaming with pg_receivewal through a replication slot, supervised: restarted
with backoff when it exits, and, with `synchronous`, registered as the synchronous standby so a
commit returns only once its WAL is on the repository's disk (RPO = 0).

A restart of the server (or an in-place restore, which stops it and starts it on a new
timeline) is an outage the supervisor waits out, up to a deadline. Before each start of
pg_receivewal the stream folder is aligned with the server's history: segments of a history the
server abandoned, and the segment in which it forked away from an older timeline, are set aside
in `abandoned/` (never deleted), so pg_receivewal resumes at a point the server can serve.

The synchronous setting is removed again when the supervisor stops: a synchronous standby that is
gone would make every commit on the source wait. One killed with SIGKILL cannot; see
streamstate.py for how the next command removes it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from spectral.errors import ClusterError, ConnectError, UsageError
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.osuser import make_owned_dir, server_identity
from spectral.providers.local import walsize
from spectral.providers.local.streamdir import align, resume_from_archive, server_lineage
from spectral.providers.local.streamdir import align_stream_dir as align_stream_dir
from spectral.providers.local.streamstate import (
    APPLICATION,
    StreamState,
    StreamStatus,
    clear_synchronous_file,
    record,
    set_synchronous,
    status_file,
    supervisor_alive,
    supervisor_state,
)
from spectral.providers.local.wal import parse_segment
from spectral.runner import child_env, run, spawn

SLOT = "spectral_stream"
SETTLED = 5.0          # seconds pg_receivewal must run before it counts as streaming
OUTAGE_BACKOFF = 5.0   # the longest pause between two attempts to reach a server that is down
STATUS_INTERVAL = 1    # seconds between pg_receivewal's replies to the server



def receivewal_argv(bins: PgBinaries, conninfo: str, dest: Path, *,
                    synchronous: bool) -> list[str]:
    argv = [bins.path("pg_receivewal"), "-d", f"{conninfo} application_name={APPLICATION}",
            "-D", str(dest), "--slot", SLOT, "--no-loop", "--no-password",
            # its write and flush positions reach pg_stat_replication (the live RPO of
            # `dr wal status`) once a second instead of every 10 s (the default)
            f"--status-interval={STATUS_INTERVAL}"]
    if synchronous:
        argv.append("--synchronous")
    return argv


def create_slot_argv(bins: PgBinaries, conninfo: str) -> list[str]:
    return [bins.path("pg_receivewal"), "-d", conninfo, "--slot", SLOT, "--create-slot",
            "--if-not-exists", "--no-password"]


# ---- the supervisor -------------------------------------------------------------------------
class Supervisor:
    """pg_receivewal, restarted when it exits, through server outages up to `outage_limit`
    seconds; the state it records is what `dr wal status` reads."""

    def __init__(self, bins: PgBinaries, cluster: Cluster, stream_dir: Path, *,
                 synchronous: bool, report: Callable[[str], None],
                 should_stop: Callable[[], bool], max_backoff: float,
                 outage_limit: float) -> None:
        self.bins, self.cluster, self.dir = bins, cluster, stream_dir
        self.synchronous, self.report, self.should_stop = synchronous, report, should_stop
        self.max_backoff, self.outage_limit = max_backoff, outage_limit
        self.status = StreamStatus.new(synchronous)
        self.proc: subprocess.Popen[bytes] | None = None
        self.down_since: float | None = None
        self.removed_on_server = False   # pg_receivewal's last run asked for removed WAL
        self.log_path = stream_dir / "pg_receivewal.log"

    def run(self) -> StreamStatus:
        if supervisor_alive(self.dir):
            other = (supervisor_state(self.dir) or {}).get("supervisor_pid")
            raise UsageError(f"a `dr wal stream` is already running (pid {other}, "
                             f"{status_file(self.dir)})", hint="one stream at a time")
        record(self.dir, self.status)   # before the synchronous setting: it names its owner
        backoff = 1.0
        try:
            while not self.should_stop():
                if not self._ready():
                    self._pause(min(OUTAGE_BACKOFF, 1.0 + (time.monotonic()
                                                           - (self.down_since or 0)) / 4))
                    continue
                ran = self._receive()
                if ran is None:
                    break
                backoff = 1.0 if ran > 60 else min(backoff * 2, self.max_backoff)
                self.report(f"pg_receivewal exited ({self.status.last_exit}); restarting in "
                            f"{backoff:.0f}s")
                self._pause(backoff)
        finally:
            self._stop()
            self.status.pid = None
            status_file(self.dir).unlink(missing_ok=True)
        return self.status

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.should_stop():
            time.sleep(0.2)

    def _ready(self) -> bool:
        """Reach the server, out of recovery, with our slot, our synchronous setting and a
        stream folder aligned with its history; False (and the outage noted) when it cannot."""
        try:
            with self.cluster.connect(timeout=5) as conn:
                if conn.execute("select pg_is_in_recovery()").fetchone() == (True,):
                    return self._outage("the server is in recovery")
                flush_lsn, lineage, seg_size = server_lineage(self.cluster, conn)
            if self.synchronous:
                set_synchronous(self.cluster, True)   # a restored data directory lacks it
        except (ConnectError, psycopg.Error) as exc:
            return self._outage(" ".join(str(exc).split()))
        # an in-place restore replaced the data directory, and its slot with it
        run(create_slot_argv(self.bins, self.cluster.conninfo()), timeout=60,
            run_as=server_identity(), check=False)
        moved, back = align(self.dir, lineage, flush_lsn, seg_size)
        if self.removed_on_server:
            self.removed_on_server = False
            copied = resume_from_archive(self.dir, self.dir.parent / "wal", lineage, flush_lsn,
                                         seg_size)
            if copied:
                self.report(f"the server no longer has the WAL the stream would resume at; "
                            f"resuming after {copied}, copied from the archive")
        if back:
            self.report(f"brought back {len(back)} segment(s) on the server's history again "
                        f"({', '.join(back)})")
        if moved:
            self.report(f"set aside {len(moved)} segment(s) not on the server's history "
                        f"({', '.join(moved)}) in {self.dir / 'abandoned'}")
        if self.down_since is not None:
            self.report("the server is reachable again")
        self.down_since = None
        return True

    def _outage(self, reason: str) -> bool:
        now = time.monotonic()
        if self.down_since is None:
            self.down_since = now
            self.report(f"waiting for the server ({reason})")
            record(self.dir, self.status, StreamState.WAITING_FOR_SERVER)
        elif now - self.down_since > self.outage_limit:
            raise ClusterError(f"the server has not been reachable for "
                               f"{self.outage_limit:g}s ({reason}); the WAL stream stopped")
        return False

    def _receive(self) -> float | None:
        """One run of pg_receivewal: how long it ran, or None when the supervisor stops."""
        ident = server_identity()
        with open(self.log_path, "ab") as log:
            offset = log.tell()
            self.proc = spawn(receivewal_argv(self.bins, self.cluster.conninfo(), self.dir,
                                              synchronous=self.synchronous),
                              run_as=ident, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                              env=child_env(None, ident), cwd=self.dir, bound=True)
        self.status.pid = self.proc.pid
        record(self.dir, self.status, StreamState.STARTING)
        self.report(f"pg_receivewal running (pid {self.proc.pid}"
                    f"{', synchronous' if self.synchronous else ''})")
        started = time.monotonic()
        while self.proc.poll() is None and not self.should_stop():
            if self.status.state is not StreamState.STREAMING and \
                    time.monotonic() - started > SETTLED:
                self.status.failing = False
                record(self.dir, self.status, StreamState.STREAMING)
            time.sleep(0.2)
        if self.proc.poll() is None:
            return None
        ran = time.monotonic() - started
        self.status.restarts += 1
        self.status.last_exit = f"exit code {self.proc.returncode}: " \
            f"{_exit_reason(self.log_path, offset)}"
        self.status.failing = ran < 10
        self.removed_on_server = "has already been removed" in self.status.last_exit
        self.status.pid = None
        record(self.dir, self.status, StreamState.RESTARTING)
        return ran

    def _stop(self) -> None:
        """Stop the pg_receivewal this supervisor started (by its pid), and take the
        synchronous setting away again."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if not self.synchronous:
            return
        try:
            set_synchronous(self.cluster, False)
        except (ConnectError, psycopg.Error):
            # the source is down: make sure it does not come back waiting for us
            clear_synchronous_file(self.cluster.data_dir)


def supervise(bins: PgBinaries, cluster: Cluster, stream_dir: Path, *, synchronous: bool,
              report: Callable[[str], None], should_stop: Callable[[], bool],
              max_backoff: float = 30.0, outage_limit: float = 3600.0) -> StreamStatus:
    """Run pg_receivewal until `should_stop()` or an interrupt; restart it when it exits, and
    wait out a server that is down or restarting for up to `outage_limit` seconds."""
    make_owned_dir(stream_dir, 0o750)
    return Supervisor(bins, cluster, stream_dir, synchronous=synchronous, report=report,
                      should_stop=should_stop, max_backoff=max_backoff,
                      outage_limit=outage_limit).run()


def _exit_reason(path: Path, offset: int) -> str:
    """What pg_receivewal logged since `offset`: its first error (the cause; "disconnected"
    often follows it), else its last line."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            lines = log.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    errors = [ln for ln in lines if "error:" in ln]
    return errors[0] if errors else (lines[-1] if lines else "")


LAG_SQL = """
select pg_current_wal_lsn()::text,
       a.last_archived_wal, a.last_archived_time, a.failed_count, a.last_failed_wal,
       extract(epoch from now() - a.last_archived_time),
       current_setting('synchronous_standby_names'),
       (select count(*) from pg_stat_activity where wait_event = 'SyncRep')
from pg_stat_archiver a
"""

# pg_receivewal reports no replay position, so the walsender never sees it caught up and keeps
# its last measured flush_lag for ever: the lag in seconds is 0 once everything is flushed
STREAM_SQL = """
select r.pid, r.flush_lsn::text, r.write_lsn::text, r.sync_state,
       greatest(pg_wal_lsn_diff(pg_current_wal_lsn(), r.flush_lsn), 0),
       case when r.flush_lsn >= pg_current_wal_lsn() then 0
            else extract(epoch from coalesce(r.flush_lag, now() - r.reply_time)) end,
       extract(epoch from now() - r.reply_time)
from pg_stat_replication r where r.application_name = %s
order by r.backend_start desc limit 1
"""


def wal_status(cluster: Cluster, stream_dir: Path, *,
               released: str | None = None) -> dict[str, Any]:
    """The live RPO: how much committed WAL is not yet in the repository, from the server's
    own views (pg_stat_archiver, pg_stat_replication) and the supervisor's state file, read
    with whether that supervisor is alive. `released`: what this command did about a dead
    synchronous stream before (streamstate.release_dead_synchronous)."""
    with cluster.connect() as conn:
        row = conn.execute(LAG_SQL).fetchone()
        stream_row = conn.execute(STREAM_SQL, (APPLICATION,)).fetchone()
        last_commit = conn.execute("select (pg_last_committed_xact()).timestamp").fetchone()
        size = conn.execute(walsize.SETTING_SQL).fetchone()
    assert row is not None and size is not None
    out = _archive_status(row, walsize.from_setting(size[0]))
    out["stream"] = None if stream_row is None else {
        "pid": stream_row[0], "flush_lsn": stream_row[1], "write_lsn": stream_row[2],
        # no flush position yet (pg_receivewal has not replied since it connected): unknown
        "sync_state": stream_row[3],
        "lag_bytes": None if stream_row[1] is None else int(stream_row[4]),
        "lag_seconds": None if stream_row[1] is None else round(float(stream_row[5] or 0), 3),
        "seconds_since_reply": None if stream_row[6] is None else round(float(stream_row[6]), 1)}
    out.update(_stream_state(stream_dir, out["stream"], synchronous_names=row[6],
                             waiting=int(row[7]), released=released))
    _rpo(out, last_commit[0] if last_commit else None, row[2])
    return out


def _archive_status(row: tuple[Any, ...], seg_size: int) -> dict[str, Any]:
    from spectral.providers.local.wal import format_lsn, parse_lsn

    current, last_wal, last_time, failed, last_failed, since = row[:6]
    archived_to = None
    if last_wal and (seg := parse_segment(last_wal, seg_size)) is not None:
        archived_to = seg.end_lsn()
    return {"current_lsn": current, "archive": {
        "archived_through_lsn": format_lsn(archived_to) if archived_to else None,
        "lag_bytes": max(0, parse_lsn(current) - archived_to) if archived_to else None,
        "last_archived_wal": last_wal,
        "last_archived_at": last_time.isoformat() if last_time else None,
        "seconds_since_last_archive": round(float(since), 1) if since else None,
        "failed_count": failed, "last_failed_wal": last_failed}}


def _stream_state(stream_dir: Path, stream: dict[str, Any] | None, *, synchronous_names: str,
                  waiting: int, released: str | None) -> dict[str, Any]:
    """The stream's state from live facts: connected (pg_stat_replication) wins over what the
    supervisor last recorded; its record counts only while that supervisor is alive."""
    sup = supervisor_state(stream_dir)
    if stream is not None:
        state = "streaming"
        if sup is not None:
            sup["failing"] = False     # whatever the last run did, this one is connected
    elif sup is not None and sup["alive"]:
        state = str(sup.get("state") or "starting")
    elif sup is not None:
        state = "dead"
    else:
        state = "not running"
    blocked = None
    ours = synchronous_names == APPLICATION
    if ours and (stream is None or stream["sync_state"] != "sync"):
        why = "is dead" if state in ("dead", "not running") else f"is not connected ({state})"
        blocked = f"commits are blocked: synchronous stream {why}; {waiting} commit(s) waiting"
    return {"supervisor": sup, "stream_state": state, "synchronous": ours,
            "commits_blocked": blocked, "waiting_commits": waiting, "released": released}


def _rpo(out: dict[str, Any], commit_time: datetime | None,
         last_time: datetime | None) -> None:
    """The live RPO: committed work not yet safe in the repository."""
    if out["stream"] and out["stream"]["lag_bytes"] is not None:
        out["rpo_bytes"] = out["stream"]["lag_bytes"]
        out["rpo_seconds"] = out["stream"]["lag_seconds"]
        return
    out["rpo_bytes"] = out["archive"]["lag_bytes"]
    pending = out["archive"]["lag_bytes"] and commit_time and last_time and \
        commit_time > last_time
    out["rpo_seconds"] = (round((datetime.now(UTC) - last_time).total_seconds(), 1)
                          if pending and last_time else 0.0)
