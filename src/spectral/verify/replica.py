"""Reading the source where it hurts least: an environment's snapshot_dsn names a streaming
replica of its database, and the snapshot of a drill, `dr snapshot` or `dr fingerprint` is
taken there instead of on the primary.

Which LSN a replica's snapshot stands for. On a hot standby a snapshot sees the transactions
whose commit records were replayed when it was taken; `pg_last_wal_replay_lsn()` is where
replay stood when the function ran, and replay goes on meanwhile (PostgreSQL: "if recovery is
still in progress this will increase monotonically"). So the snapshot's transaction reads the
replay LSN before its snapshot (in the transaction that lists the tables) and again in the
statement that takes it: equal, no record was replayed in between, and the snapshot holds
exactly the commits before that LSN, the recovery target. Moved, the attempt is dropped before
anything is scanned and the next one starts (ReplayMoved). Left open: a commit record whose
replay began before the first read and ended after the second (the startup process makes a
transaction visible before it advances the replay LSN past its record): that snapshot would
see one transaction more than the copy holds, and the drill FAILs on it; never a false PASS.
Pausing replay (`pg_wal_replay_pause()`) would close it, but needs a superuser or a grant that
a read-only role does not have."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from spectral.errors import CouldNotVerify, UsageError
from spectral.pg.conn import connect, describe
from spectral.pg.waldump import parse_lsn

if TYPE_CHECKING:   # a fingerprint of a DSN or a file needs no configuration loaded
    from spectral.config.models import EnvironmentConfig

REPLAY_ATTEMPTS = 20      # snapshots tried before replay is called too busy to pin one on
LOST_ATTEMPTS = 3         # scans tried before a replica's conflicts are called too frequent

BEFORE_SQL = "select case when pg_is_in_recovery() then pg_last_wal_replay_lsn()::text end"
FACTS_SQL = """
select pg_is_in_recovery(), current_database(),
       case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end,
       case when not pg_is_in_recovery()
                 or pg_last_wal_receive_lsn() is not distinct from pg_last_wal_replay_lsn()
            then 0 else extract(epoch from now() - pg_last_xact_replay_timestamp()) end,
       current_setting('hot_standby_feedback')
"""
SYSID_SQL = "select (pg_control_system()).system_identifier::text"


class ReplayMoved(Exception):
    """Replay advanced while the snapshot was taken: which commits it holds is not known."""

    def __init__(self, before: str, after: str) -> None:
        self.before, self.after = before, after
        super().__init__(f"replay moved from {before} to {after} while the snapshot was taken")


class SnapshotLost(Exception):
    """The session that took the snapshot ended before the scan did. Its open transaction is
    what protects the scan's rows on a replica: replay meets a record that removes row
    versions the snapshot still sees (pruning, vacuum), lists the sessions whose xmin conflicts
    once, and waits for those. A scan session that imports the snapshot while replay already
    waits is not on that list; if the exporting session then ends (or is cancelled after
    max_standby_streaming_delay), replay removes the versions under the scan, which reads
    fewer rows than the snapshot holds, with no error. So the exporter holds its transaction
    until the last range is read, and a scan whose exporter did not survive it is dropped."""

    def __init__(self, why: str) -> None:
        self.why = why
        super().__init__(f"the snapshot's own session ended during the scan ({why})")


def lost(exc: SnapshotLost, what: str) -> CouldNotVerify:
    return CouldNotVerify(
        f"{what}: the session holding the snapshot ended during each of {LOST_ATTEMPTS} "
        f"scans (last: {exc.why}); rows read without it may be missing",
        hint="on a replica: set hot_standby_feedback = on, or raise "
             "max_standby_streaming_delay above the scan's duration")


def too_busy(moved: ReplayMoved, what: str) -> CouldNotVerify:
    return CouldNotVerify(
        f"{what}: the replica's replay moved while each of {REPLAY_ATTEMPTS} snapshots was "
        f"taken (last from {moved.before} to {moved.after}): no snapshot pinned to one LSN",
        hint="run it when the primary writes less, or take the snapshot on the primary "
             "(remove snapshot_dsn)")


@dataclass(frozen=True)
class Replica:
    """The replica a snapshot is taken on, and how far behind the primary it was."""

    dsn: str
    lag_bytes: int
    lag_seconds: float
    feedback: bool       # hot_standby_feedback: its snapshots hold the primary's xmin too

    def describe(self) -> str:
        held = ("hot_standby_feedback is on: the primary's xmin horizon is held back as long"
                if self.feedback else "hot_standby_feedback is off: the primary's xmin horizon "
                "is not held (a long scan may be cancelled by a conflict with recovery)")
        return (f"snapshot taken on the replica {describe(self.dsn)}, {self.lag_bytes:,} bytes "
                f"({self.lag_seconds:.1f} s) behind the primary; {held}")


def replica_for(env: EnvironmentConfig, primary: str, base_dir: Any = None) -> Replica | None:
    """The environment's snapshot_dsn checked against its primary (None without one): a
    server that is not a replica of this very cluster and database is a configuration error
    (exit 2), since its LSN would mean nothing to the primary's backups."""
    if env.snapshot_dsn is None:
        return None
    from spectral.config.secrets import resolve_dsn

    dsn = resolve_dsn(env.snapshot_dsn, base_dir)
    where = f"snapshot_dsn ({describe(dsn)})"
    with connect(primary) as conn:
        p_sysid, p_db = _sysid(conn, "the primary"), _facts(conn)[1]
    with connect(dsn) as conn:
        r_sysid = _sysid(conn, where)
        recovering, r_db, replayed, seconds, feedback = _facts(conn)
    if not recovering:
        raise UsageError(f"{where} is not a replica (not in recovery): a snapshot there has "
                         f"no place in the primary's WAL",
                         hint="point snapshot_dsn at a streaming replica, or remove it")
    if r_sysid != p_sysid:
        raise UsageError(f"{where} is a replica of another cluster (system identifier "
                         f"{r_sysid}, the primary's is {p_sysid})",
                         hint="point snapshot_dsn at a replica of this environment's database")
    if r_db != p_db:
        raise UsageError(f"{where} connects to database {r_db}, the environment's is {p_db}")
    with connect(primary) as conn:
        current = _facts(conn)[2]
    lag = max(0, parse_lsn(str(current)) - parse_lsn(str(replayed)))
    return Replica(dsn, lag, float(seconds or 0) if lag else 0.0, feedback == "on")


def _facts(conn: psycopg.Connection[Any]) -> tuple[Any, ...]:
    row = conn.execute(FACTS_SQL).fetchone()
    assert row is not None
    return tuple(row)


def _sysid(conn: psycopg.Connection[Any], who: str) -> str:
    """The cluster's system identifier (pg_control_system needs pg_monitor or a superuser)."""
    try:
        row = conn.execute(SYSID_SQL).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        raise UsageError(f"cannot read the system identifier of {who}: snapshot_dsn cannot "
                         f"be checked to be a replica of this environment's database",
                         hint="grant pg_monitor to the roles of dsn and snapshot_dsn") from None
    assert row is not None
    return str(row[0])
