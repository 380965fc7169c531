"""Resolving a recovery target against the repository: which backup chain to start from, which
interval of the recoverable window holds the target, and the exact point recovery must stop
at. A target is restored as it is, resolved to the same state by another name (a time after
the last commit: the end of that stretch of WAL), or refused with the reason; it is never
silently replaced by a different state.

"The same state" is what PostgreSQL's own recovery with the same recovery_target_* settings
would hold (recoveryStopsBefore/After in xlogrecovery.c): a time target stops before the first
record, in WAL order, that ends a transaction later than the target (at or later, exclusive);
only when the WAL holds no such record is the time resolved to the end of the WAL."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from spectral.errors import CouldNotVerify, UsageError, shown
from spectral.pg.binaries import PgBinaries
from spectral.pg.waldump import LONG_HEADER
from spectral.providers.base import Backup, RecoverableWindow, WalGap, WindowInterval
from spectral.providers.local import walread
from spectral.providers.local.newtimeline import reused_note
from spectral.providers.local.repo import Repository
from spectral.providers.local.wal import (
    CommitRecord,
    format_lsn,
    parse_commit_line,
    parse_lsn,
    parse_segment,
)
from spectral.providers.local.window import lineage_of, usable_backups
from spectral.recovery_target import (
    LsnTarget,
    RecoveryTarget,
    TargetKind,
    TimeTarget,
    XidTarget,
)
from spectral.timefmt import exact


@dataclass(frozen=True)
class RestorePlan:
    target: RecoveryTarget         # what recovery is told: the request, or the same state
    chain: list[Backup]            # the full backup and incrementals, oldest first
    target_lsn: int | None         # where the target is in the WAL, when known
    requested: RecoveryTarget | None = None
    why: str = ""                  # why the target was resolved to another name

    @property
    def resolved(self) -> bool:
        return self.requested is not None and self.requested != self.target


def _outside(what: str, window: RecoverableWindow) -> UsageError:
    return UsageError(f"{what} is outside the recoverable window: {window.describe()}")


def _in_hole(what: str, window: RecoverableWindow, iv: WindowInterval,
             seg_size: int) -> CouldNotVerify:
    gap = _hole_after(window, iv, seg_size)
    missing = f"{_file(gap)} {gap.problem}" if gap else "WAL is missing from the archive"
    return CouldNotVerify(f"{what} cannot be restored exactly: {missing}, so what happened "
                          f"after {exact(iv.end_time)} (LSN "
                          f"{iv.end_lsn}) is unknown", hint=f"the last reachable point before "
                          f"the hole: --target-lsn {iv.end_lsn}")


def locate(bins: PgBinaries, repo: Repository, target: RecoveryTarget,
           window: RecoverableWindow) -> int | None:
    """The LSN of an xid's commit or of a named restore point; None for time, latest."""
    if isinstance(target, LsnTarget):
        return target.lsn
    if target.kind not in (TargetKind.XID, TargetKind.NAME):
        return None
    lin = lineage_of(repo)   # xids repeat on an abandoned timeline
    assert window.earliest_lsn is not None
    first = lin.view.segno(parse_lsn(window.earliest_lsn))
    summary = walread.summarize(bins, lin.view.where,
                                [s for s in lin.segments if s.segno >= first - 1],
                                limit=lin.end_cap)
    if isinstance(target, XidTarget):
        return _xid_end(summary.commits, target, window)
    for lsn, name in summary.restore_points:
        if name == target.value:
            return lsn
    raise _not_found(f"restore point {target.value}", window)


def _not_found(what: str, window: RecoverableWindow) -> UsageError | CouldNotVerify:
    """A target the readable WAL does not hold: outside the window (exit 2), unless some of
    the window's WAL is missing or unreadable; whether it lies there cannot be told (exit 3)."""
    if not window.gaps:
        return UsageError(f"{what} is not in the WAL archive's recoverable window "
                          f"({window.describe()})")
    gap = window.gaps[0]
    first = window.intervals[0] if window.intervals else None
    return CouldNotVerify(
        f"{what} is not in the WAL that can be read, and {_file(gap)} {gap.problem}: "
        f"whether it lies there is unknown",
        hint=f"the last reachable point before the hole: --target-lsn {first.end_lsn}"
        if first is not None else "spectral dr backups names every gap")


def _xid_end(ends: list[CommitRecord], target: XidTarget, window: RecoverableWindow) -> int:
    """The commit record of the transaction, as recovery_target_xid finds it: a COMMIT, or the
    COMMIT_PREPARED of a two-phase transaction (which names the prepared xid)."""
    for rec in ends:
        if rec.xid == target.xid:
            if not rec.committed:
                raise UsageError(f"transaction {target.value} aborted; there is nothing "
                                 f"to recover to before it")
            return rec.lsn
        if target.xid in rec.subxacts:
            # recovery compares the top-level xid only: a subtransaction's would never be met
            raise UsageError(f"transaction {target.value} is a subtransaction of transaction "
                             f"{rec.xid}; recovery targets name the top-level transaction",
                             hint=f"--target-xid {rec.xid}")
    raise _not_found(f"transaction {target.value}", window)


def _hole_after(window: RecoverableWindow, iv: WindowInterval,
                seg_size: int) -> WalGap | None:
    """The first gap (missing or unreadable WAL) that reaches past the interval's end, if there
    is one. A gap can begin at or before that end: a crashed source's unarchived WAL begins
    exactly at the end of a backup whose own WAL is all a restore has; a segment missing or
    damaged in the archive can be the one holding a backup's end, the backup's own WAL
    covering it only up to there."""
    end = parse_lsn(iv.end_lsn)
    return next((g for g in window.gaps if _gap_end(g, seg_size) > end), None)


def _gap_end(gap: WalGap, seg_size: int) -> int:
    """The first LSN after the gap: the end of the last segment it leaves out."""
    last = parse_segment(gap.missing_to, seg_size)
    return ((last.segno if last is not None else _gap_segno(gap, seg_size)) + 1) * seg_size


def _gap_segno(gap: WalGap, seg_size: int) -> int:
    """The first segment number a gap leaves out (a missing history file: the first of its
    timeline's own, the one after `after_segment`)."""
    seg = parse_segment(gap.missing_from, seg_size)
    return seg.segno if seg is not None else _segno(gap.after_segment, seg_size) + 1


def _file(gap: WalGap) -> str:
    return (f"timeline history file {gap.missing_from}" if gap.missing_from.endswith(".history")
            else f"WAL segment {gap.missing_from}")


def _final(window: RecoverableWindow, iv: WindowInterval, seg_size: int) -> bool:
    """Whether the interval runs to the end of the archive (no hole after it)."""
    return _hole_after(window, iv, seg_size) is None


def _segno(name: str, seg_size: int) -> int:
    seg = parse_segment(name, seg_size)
    assert seg is not None
    return seg.segno


def _newest(backups: list[Backup], ids: list[str],
            fits: Callable[[Backup], bool]) -> Backup | None:
    pool = [b for b in backups if b.id in ids and fits(b)]
    return pool[-1] if pool else None


def plan(bins: PgBinaries, repo: Repository, target: RecoveryTarget,
         window: RecoverableWindow, backup_id: str | None = None) -> RestorePlan:
    """The newest backup that precedes the target in the same interval (or the one named), and
    the exact stop point."""
    backups = usable_backups(repo)
    if backup_id is not None and backup_id not in {b.id for b in backups}:
        known = ", ".join(b.id for b in backups) or "none"
        raise UsageError(f"backup '{shown(backup_id)}' is not a usable backup (usable: {known})")
    if not backups or window.empty or not window.intervals:
        raise CouldNotVerify("there is no verified base backup to restore from"
                             + reused_note(repo), hint="spectral dr backup")
    resolved = _resolve(bins, repo, target, window, backups)
    chosen, stop_target, lsn, why = resolved
    if backup_id is not None:
        named = next(b for b in backups if b.id == backup_id)
        iv = next(i for i in window.intervals if chosen.id in i.backups)
        if named.id not in iv.backups or parse_lsn(named.stop_lsn) > parse_lsn(chosen.stop_lsn):
            raise UsageError(f"backup {backup_id} cannot reach {target.describe()}: it ends after "
                             f"the target or lies across a hole in the WAL from it")
        chosen = named
    return RestorePlan(stop_target, repo.chain(chosen), lsn, target, why)


def _resolve(bins: PgBinaries, repo: Repository, target: RecoveryTarget,
             window: RecoverableWindow,
             backups: list[Backup]) -> tuple[Backup, RecoveryTarget, int | None, str]:
    last, size = window.intervals[-1], repo.segment_size()
    if target.kind is TargetKind.LATEST:
        if not _final(window, last, size):
            raise _in_hole("the latest point", window, last, size)
        return backups[-1], target, None, ""
    if isinstance(target, TimeTarget):
        return _resolve_time(bins, repo, target, window, backups)
    lsn = locate(bins, repo, target, window)
    assert lsn is not None
    what = f"{target.describe()} (LSN {format_lsn(lsn)})"
    lsn = _past_the_header(lsn, window, size)
    for iv in window.intervals:
        start, end, wal_end = (parse_lsn(iv.start_lsn), parse_lsn(iv.end_lsn),
                               parse_lsn(iv.wal_end))
        if not start <= lsn <= wal_end:
            continue
        chosen = _newest(backups, iv.backups, lambda b: parse_lsn(b.stop_lsn) <= lsn)
        if chosen is None:
            raise _outside(what, window)
        if lsn <= end:
            return chosen, target, lsn, ""
        # after the last record: the state there is the state after that record
        return chosen, LsnTarget(end), end, (
            f"{what} lies after the last WAL record of the archive ({iv.end_lsn}); the state "
            f"there is the state after that record")
    # not inside an interval: after a hole (the WAL there is missing or unreadable: unknown),
    # or before the window's start or past its end (the archive was flushed first: WAL not
    # written yet), outside the window
    before = [iv for iv in window.intervals if parse_lsn(iv.wal_end) < lsn]
    if before and not _final(window, before[-1], size):
        raise _in_hole(what, window, before[-1], size)
    raise _outside(what, window)


def _past_the_header(lsn: int, window: RecoverableWindow, size: int) -> int:
    """An LSN just past the page header of the segment after the archive's last one (where
    the next record would start: pg_current_wal_insert_lsn() after a WAL switch on an idle
    database) stands for the same state as the segment's boundary: no record lies between."""
    wal_end = parse_lsn(window.intervals[-1].wal_end)
    if wal_end % size == 0 and wal_end < lsn <= wal_end + LONG_HEADER:
        return wal_end
    return lsn


def time_stop(ends: Iterable[CommitRecord], target: TimeTarget) -> CommitRecord | None:
    """The record before which PostgreSQL's recovery stops for a time target: the first, in
    WAL order, that ends a transaction at a time the target stops before; None when recovery
    would replay all of `ends` without stopping."""
    return next((rec for rec in ends if target.stops_before(rec.time)), None)


def _transaction_ends(bins: PgBinaries, repo: Repository, start: int,
                      iv: WindowInterval) -> Iterator[CommitRecord]:
    """The records that end a transaction (commits and aborts, two-phase ones included) that
    recovery from `start` replays in the interval, in WAL order. Only transaction records are
    printed (pg_waldump --rmgr=Transaction), so reading is as fast as pg_waldump's decoding."""
    lin = lineage_of(repo)
    end = parse_lsn(iv.end_lsn)
    # a record crossing into the segment after the interval's end is read whole
    last_seg = lin.view.segno(max(parse_lsn(iv.wal_end), end + 1) - 1)
    segments = [s for s in lin.segments if lin.view.segno(start) <= s.segno <= last_seg]
    for line in walread.dump(bins, lin.view.where, segments, rmgr="Transaction"):
        if (rec := parse_commit_line(line)) is None:
            continue
        if rec.lsn > end:
            return
        if rec.lsn >= start:
            yield rec


def _resolve_time(bins: PgBinaries, repo: Repository, target: TimeTarget,
                  window: RecoverableWindow,
                  backups: list[Backup]) -> tuple[Backup, RecoveryTarget, int | None, str]:
    from spectral.providers.local.consistency import consistent_times

    when = target.at
    what = f"--target-time {when.isoformat()}" + (" --exclusive" if target.exclusive else "")
    if when > datetime.now(UTC):
        raise UsageError(f"{what} is in the future")
    starts, size = consistent_times(bins, repo, backups), repo.segment_size()

    def reaches(b: Backup) -> bool:
        """Every transaction that ended before the backup's consistency point ended at or
        before the target (before it, exclusive): see consistency.py."""
        return starts[b.id] < when or (starts[b.id] == when and not target.exclusive)

    for iv in window.intervals:
        if when < iv.start_time or (target.exclusive and when == iv.start_time):
            break
        chosen = _newest(backups, iv.backups, reaches)
        if chosen is None:
            continue
        if when < iv.end_time or (target.exclusive and when == iv.end_time > starts[chosen.id]):
            return chosen, target, None, ""     # the last commit stops recovery, or one before
        final, nxt = _final(window, iv, size), window.intervals.index(iv) + 1
        if not final and nxt < len(window.intervals) and (
                when > window.intervals[nxt].start_time or
                (when == window.intervals[nxt].start_time and not target.exclusive)):
            continue                            # a later backup, past the hole, reaches it
        # the last commit is at or before the target: whether recovery stops in this WAL
        # depends on every transaction's end (an abort, a clock that ran behind, a commit at
        # exactly an exclusive target), so it is read, not guessed from the last commit
        ends = _transaction_ends(bins, repo, parse_lsn(chosen.start_lsn), iv)
        if (stop := time_stop(ends, target)) is not None:
            return chosen, target, stop.lsn, ""
        if not final:
            raise _in_hole(what, window, iv, size)
        # nothing in the archive ends a transaction after the target: the state at that time
        # is the state after the archive's last record (PostgreSQL would wait for more WAL)
        after = "at or after" if target.exclusive else "after"
        return chosen, LsnTarget(parse_lsn(iv.end_lsn)), parse_lsn(iv.end_lsn), (
            f"no transaction ended {after} {exact(when)} in the archive; restored to its last "
            f"record ({iv.end_lsn})")
    raise _outside(what, window)
