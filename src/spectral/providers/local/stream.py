"""Continuous WAL streaming with pg_receivewal through a replication slot, supervised: restarted
with backoff when it exits, and, with `synchronous`, registered as the synchronous standby so a
commit returns only once its WAL is on the repository's disk (RPO = 0).

The synchronous setting is removed again when the supervisor stops: a synchronous standby that is
gone would make every commit on the source wait."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spectral.durable import write_atomic
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.osuser import make_owned_dir, server_identity
from spectral.runner import child_env, run, spawn

SLOT = "spectral_stream"
APPLICATION = "spectral_stream"


def receivewal_argv(bins: PgBinaries, conninfo: str, dest: Path, *,
                    synchronous: bool) -> list[str]:
    argv = [bins.path("pg_receivewal"), "-d", f"{conninfo} application_name={APPLICATION}",
            "-D", str(dest), "--slot", SLOT, "--no-loop", "--no-password"]
    if synchronous:
        argv.append("--synchronous")
    return argv


def create_slot_argv(bins: PgBinaries, conninfo: str) -> list[str]:
    return [bins.path("pg_receivewal"), "-d", conninfo, "--slot", SLOT, "--create-slot",
            "--if-not-exists", "--no-password"]


@dataclass
class StreamStatus:
    pid: int | None
    supervisor_pid: int
    synchronous: bool
    started_at: str
    restarts: int
    last_exit: str | None = None
    failing: bool = False           # the last run ended within seconds of its start

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def status_file(stream_dir: Path) -> Path:
    return stream_dir / "supervisor.json"


def clear_synchronous_file(data_dir: Path) -> bool:
    """Remove our synchronous standby from postgresql.auto.conf of a stopped server."""
    path = data_dir / "postgresql.auto.conf"
    if not path.exists():
        return False
    lines = path.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if not (ln.split("=", 1)[0].strip() == "synchronous_standby_names"
                                       and APPLICATION in ln)]
    if kept == lines:
        return False
    path.write_text("".join(kept))
    return True


def supervisor_alive(stream_dir: Path) -> bool:
    try:
        pid = int(json.loads(status_file(stream_dir).read_text())["supervisor_pid"])
    except (OSError, ValueError, KeyError):
        return False
    return Path(f"/proc/{pid}").exists()


def supervisor_state(stream_dir: Path) -> dict[str, Any] | None:
    """What the supervisor last recorded (is it alive, restarts, why pg_receivewal last
    exited), so `dr wal status` can say the stream is failing and why."""
    try:
        d: dict[str, Any] = json.loads(status_file(stream_dir).read_text())
    except (OSError, ValueError):
        return None
    d["alive"] = supervisor_alive(stream_dir)
    return d


def set_synchronous(cluster: Cluster, on: bool) -> None:
    with cluster.connect() as conn:
        if on:
            conn.execute(f"alter system set synchronous_standby_names = '{APPLICATION}'")
        else:
            conn.execute("alter system reset synchronous_standby_names")
        conn.execute("select pg_reload_conf()")


def server_lineage(cluster: Cluster) -> tuple[int, list[tuple[int, int | None]]]:
    """The server's current timeline and, for each timeline of its ancestry, where it ended
    (None for the current one), from the history file in its own pg_wal."""
    from spectral.providers.local.wal import read_history

    with cluster.connect() as conn:
        row = conn.execute("select pg_walfile_name(pg_current_wal_lsn())").fetchone()
    assert row is not None
    tli = int(str(row[0])[:8], 16)
    spans: list[tuple[int, int | None]] = [(h.timeline, h.switch_lsn) for h in
                                           read_history(cluster.data_dir / "pg_wal", tli)]
    return tli, [*spans, (tli, None)]


def align_stream_dir(cluster: Cluster, stream_dir: Path) -> list[str]:
    """pg_receivewal resumes from the newest segment in its folder, on that segment's timeline.
    After an in-place restore or an undo the server is on a new timeline and that segment may
    belong to the history it abandoned ("requested starting point ... is not in this server's
    history"): such segments are moved into `abandoned/` (not deleted), so the stream resumes
    on the server's own lineage."""
    from spectral.providers.local.wal import parse_segment

    _tli, spans = server_lineage(cluster)
    ends = dict(spans)
    moved = []
    for path in sorted(stream_dir.iterdir()):
        seg = parse_segment(path.name)
        if seg is None:
            continue
        end = ends.get(seg.timeline, -1)
        on_lineage = seg.timeline in ends and (end is None or seg.start_lsn() < end)
        if not on_lineage:
            aside = make_owned_dir(stream_dir / "abandoned", 0o750)
            path.rename(aside / path.name)
            moved.append(path.name)
    return moved


def supervise(bins: PgBinaries, cluster: Cluster, stream_dir: Path, *, synchronous: bool,
              report: Callable[[str], None], should_stop: Callable[[], bool],
              max_backoff: float = 30.0) -> StreamStatus:
    """Run pg_receivewal until `should_stop()` or an interrupt; restart it when it exits."""
    make_owned_dir(stream_dir, 0o750)
    ident = server_identity()
    run(create_slot_argv(bins, cluster.conninfo()), timeout=60, run_as=ident)
    status = StreamStatus(None, os.getpid(), synchronous,
                          datetime.now(UTC).isoformat(timespec="seconds"), 0)
    backoff = 1.0
    proc: subprocess.Popen[bytes] | None = None
    log_path = stream_dir / "pg_receivewal.log"
    try:
        if synchronous:
            set_synchronous(cluster, True)
        while not should_stop():
            if status.restarts:
                # an in-place restore replaced the data directory, and its slot with it
                run(create_slot_argv(bins, cluster.conninfo()), timeout=60, run_as=ident,
                    check=False)
            moved = align_stream_dir(cluster, stream_dir)
            if moved:
                report(f"moved {len(moved)} segment(s) of an abandoned timeline out of the "
                       f"stream's way ({stream_dir / 'abandoned'})")
            with open(log_path, "ab") as log:
                proc = spawn(receivewal_argv(bins, cluster.conninfo(), stream_dir,
                                             synchronous=synchronous),
                             run_as=ident, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             env=child_env(None, ident), cwd=stream_dir, bound=True)
            status.pid = proc.pid
            write_atomic(status_file(stream_dir), json.dumps(status.to_json()) + "\n")
            report(f"pg_receivewal running (pid {proc.pid}"
                   f"{', synchronous' if synchronous else ''})")
            started = time.monotonic()
            while proc.poll() is None and not should_stop():
                time.sleep(0.2)
            if proc.poll() is None:
                break
            status.restarts += 1
            status.last_exit = f"exit code {proc.returncode}: {_last_line(log_path)}"
            status.failing = time.monotonic() - started < 10
            write_atomic(status_file(stream_dir), json.dumps(status.to_json()) + "\n")
            report(f"pg_receivewal exited ({status.last_exit}); restarting in {backoff:.0f}s")
            backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, max_backoff)
            deadline = time.monotonic() + backoff
            while time.monotonic() < deadline and not should_stop():
                time.sleep(0.2)
    finally:
        _stop(proc, cluster, synchronous)
        status.pid = None
        status_file(stream_dir).unlink(missing_ok=True)
    return status


def _stop(proc: subprocess.Popen[bytes] | None, cluster: Cluster, synchronous: bool) -> None:
    """Stop the pg_receivewal this supervisor started (by its pid), and take the synchronous
    setting away again."""
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    if synchronous:
        if cluster.is_running():
            set_synchronous(cluster, False)
        else:   # the source died: make sure it does not come back waiting for us
            clear_synchronous_file(cluster.data_dir)


def _last_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1] if lines else ""


LAG_SQL = """
select pg_current_wal_lsn()::text,
       a.last_archived_wal, a.last_archived_time, a.failed_count, a.last_failed_wal,
       extract(epoch from now() - a.last_archived_time),
       (select row(r.flush_lsn::text, extract(epoch from r.flush_lag), r.sync_state,
                   pg_wal_lsn_diff(pg_current_wal_lsn(), r.flush_lsn))::text
        from pg_stat_replication r where r.application_name = %s limit 1)
from pg_stat_archiver a
"""


def wal_status(cluster: Cluster, stream_dir: Path,
               seg_size: int = 16 * 1024 * 1024) -> dict[str, Any]:
    """The live RPO: how much committed WAL is not yet in the repository."""
    from spectral.providers.local.wal import format_lsn, parse_lsn, parse_segment

    with cluster.connect() as conn:
        row = conn.execute(LAG_SQL, (APPLICATION,)).fetchone()
        last_commit = conn.execute("select (pg_last_committed_xact()).timestamp").fetchone()
    assert row is not None
    current, last_wal, last_time, failed, last_failed, since, stream_row = row
    current_lsn = parse_lsn(current)
    archived_to = None
    if last_wal and (seg := parse_segment(last_wal)) is not None:
        archived_to = seg.end_lsn(seg_size)
    out: dict[str, Any] = {
        "current_lsn": current,
        "archive": {"archived_through_lsn": format_lsn(archived_to) if archived_to else None,
                    "lag_bytes": max(0, current_lsn - archived_to) if archived_to else None,
                    "last_archived_wal": last_wal,
                    "last_archived_at": last_time.isoformat() if last_time else None,
                    "seconds_since_last_archive": round(float(since), 1) if since else None,
                    "failed_count": failed, "last_failed_wal": last_failed},
        "stream": None,
    }
    if stream_row:
        flush, lag_s, sync_state, lag_bytes = stream_row.strip("()").split(",")
        out["stream"] = {"flush_lsn": flush, "lag_seconds": float(lag_s) if lag_s else 0.0,
                         "sync_state": sync_state, "lag_bytes": int(float(lag_bytes))}
    out["supervisor"] = supervisor_state(stream_dir)
    commit_time = last_commit[0] if last_commit else None
    # the live RPO: committed work not yet safe in the repository
    if out["stream"]:
        out["rpo_bytes"] = out["stream"]["lag_bytes"]
        out["rpo_seconds"] = out["stream"]["lag_seconds"]
    else:
        out["rpo_bytes"] = out["archive"]["lag_bytes"]
        pending = out["archive"]["lag_bytes"] and commit_time and last_time and \
            commit_time > last_time
        out["rpo_seconds"] = (round((datetime.now(UTC) - last_time).total_seconds(), 1)
                              if pending else 0.0)
    return out
