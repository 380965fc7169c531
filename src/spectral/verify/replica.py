"""Reading the source where it hurts least: an environment's snapshot_dsn names a streaming
replica of its database, and the snapshot of a drill, `dr snapshot` or `dr fingerprint` is
taken there instead of on the primary.

Which LSN a replica's snapshot stands for. On a hot standby a snapshot sees the transactions
whose commit records were replayed when it was taken; `pg_last_wal_replay_lsn()` is where
replay stood when the function ran, and replay goes on meanwhile (PostgreSQL: "if recovery is
still in progress this will increase monotonically"). So the snapshot's transaction reads the
replay LSN before its snapshot (in the transaction that lists the tables) and again in the
statement that takes it: equal, no record was replayed in between, and the snapshot holds
exactly the commits before that LSN, the recovery target. Moved (a primary that writes all
the time never lets replay stand still for the few round trips between the two reads), the
snapshot saw a prefix of the records replayed in between: a drill tells which from the
snapshot's xids and the archive's records (verify/pinning.py), and its LSN is where that
prefix ends; without an archive, or when the xids do not tell, the attempt is dropped before
anything is scanned and the next one starts (ReplayMoved, Unpinned). A commit record whose
replay began before the first read and ended after the second (the startup process makes a
transaction visible before it advances the replay LSN past its record) would let that snapshot
see one transaction more than the copy holds: a drill checks the record after the LSN in the
archive before it scans (verify/pinning.py) and takes the snapshot again when it may have.
Pausing replay (`pg_wal_replay_pause()`) would close it too, but needs a superuser or a grant
that a read-only role does not have."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from spectral.errors import CouldNotVerify, UsageError
from spectral.pg.conn import connect, describe
from spectral.pg.waldump import parse_lsn
from spectral.verify.pinning import PinFacts, Pinner, Unpinned

if TYPE_CHECKING:   # a fingerprint of a DSN or a file needs no configuration loaded
    from spectral.config.models import EnvironmentConfig

REPLAY_ATTEMPTS = 20      # snapshots tried before replay is called too busy to pin one on
CONFLICT_ATTEMPTS = 3     # snapshots cancelled by a conflict with recovery before giving up
SETTLE = 0.2              # seconds replay must stand still to be waiting, not mid-record
T = TypeVar("T")

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


class ReplayMoved(Unpinned):
    """Replay advanced while the snapshot was taken: which commits it holds is not known."""

    def __init__(self, before: str, after: str) -> None:
        self.before, self.after = before, after
        super().__init__(f"replay moved from {before} to {after} while the snapshot was taken")


def retaken(attempt: Callable[[], T], what: str) -> T:
    """Run `attempt` (one snapshot, read whole) until it is pinned to one LSN, at most
    REPLAY_ATTEMPTS times; a replica that cancels its queries in a conflict with recovery
    has it taken again, at most CONFLICT_ATTEMPTS times: then could not verify, with the
    settings that prevent it (never a FAIL: the data is not at fault)."""
    moved: Unpinned | None = None
    conflicts = 0
    for _ in range(REPLAY_ATTEMPTS):
        try:
            return attempt()
        except Unpinned as exc:   # replay moved, or no LSN stands for it: taken again
            moved = exc
        except (RecoveryConflict, psycopg.Error) as exc:   # a replica cancelled the scan
            if not is_recovery_conflict(exc):
                raise
            conflicts += 1
            if conflicts >= CONFLICT_ATTEMPTS:
                raise conflicted(what, exc) from None
    assert moved is not None
    raise too_busy(moved, what)


def replay_still(conn: psycopg.Connection[Any], lsn: str, read: float) -> bool:
    """Whether replay still stands at `lsn` SETTLE seconds after it was read there (at
    monotonic `read`): a commit's replay that made it visible finishes within microseconds
    (milliseconds when it drops files), so replay that has not moved is waiting before the
    next record (paused, recovery_min_apply_delay), not in the middle of it."""
    time.sleep(max(0.0, SETTLE - (time.monotonic() - read)))
    row = conn.execute("select pg_last_wal_replay_lsn()::text").fetchone()
    return row is not None and row[0] == lsn


def moving(conn: psycopg.Connection[Any], before: str, after: str, facts: PinFacts | None,
           segment: int) -> PinFacts:
    """A standby's snapshot taken while replay moved from `before` to its LSN: which of the
    records between it saw is told by its xids against the archive (pinning.py), when there
    is one and it is read from far enough back (the segment before the LSN's); else it is
    dropped before anything is scanned (ReplayMoved)."""
    if facts is None or parse_lsn(before) < (parse_lsn(after) // segment - 1) * segment:
        conn.rollback()
        raise ReplayMoved(before, after)
    return replace(facts, before=before)


def pinned(conn: psycopg.Connection[Any], pin: Pinner, facts: PinFacts, read: float) -> str:
    """A standby's snapshot pinned before its scan: a retry then costs nothing."""
    try:
        return pin(facts)
    except Unpinned as exc:
        if exc.settles and replay_still(conn, facts.lsn, read):
            return facts.lsn   # replay waits before the record (paused, delayed), not in it
        conn.rollback()   # dropped before anything is scanned
        raise


def too_busy(moved: Unpinned, what: str) -> CouldNotVerify:
    return CouldNotVerify(
        f"{what}: none of {REPLAY_ATTEMPTS} snapshots was pinned to one LSN (the last: "
        f"{moved.reason})",
        hint="run it when the source writes less" + (
            ", or take the snapshot on the primary (remove snapshot_dsn)"
            if isinstance(moved, ReplayMoved) else ""))


class RecoveryConflict(Exception):
    """The replica cancelled a query of the snapshot's to replay WAL that removes rows its
    snapshot still sees ("canceling statement due to conflict with recovery", SQLSTATE
    40001; inside a savepoint the whole connection is terminated): not the data's fault, so
    the snapshot is taken again, a few times."""


class SnapshotLost(RecoveryConflict):
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


def held_through(conn: psycopg.Connection[Any]) -> None:
    """End the snapshot's own transaction after its scan, proving it was still open: a session
    ended meanwhile (a conflict with recovery on a replica, an administrator) no longer
    protected the rows the scan read (SnapshotLost)."""
    try:
        conn.execute("select 1")
        conn.rollback()
    except psycopg.Error as exc:
        raise SnapshotLost(why_lost(exc)) from None


def why_lost(exc: psycopg.Error) -> str:
    lines = (getattr(exc.diag, "message_primary", None) or str(exc)).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def is_recovery_conflict(exc: BaseException) -> bool:
    return isinstance(exc, RecoveryConflict) or (isinstance(exc, psycopg.Error) and (
        exc.sqlstate == "40001" or "conflict with recovery" in str(exc)))


def conflicted(what: str, exc: BaseException) -> CouldNotVerify:
    return CouldNotVerify(
        f"{what}: the snapshot's queries were cancelled {CONFLICT_ATTEMPTS} times (on a "
        f"replica, a conflict with recovery: replay of WAL that removes rows they still read; "
        f"the last: {str(exc).strip()})",
        hint="on a replica kept for reading and drills, set max_standby_streaming_delay = -1 "
             "(replay waits for the scan and the replica falls behind meanwhile; the primary "
             "pays nothing), or a value above the scan's duration; or hot_standby_feedback = on "
             "(the primary then keeps those rows while the scan runs: its vacuum waits); or "
             "take the snapshot on the primary (remove snapshot_dsn)")


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
