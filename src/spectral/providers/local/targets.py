"""Resolving a recovery target against the repository: which backup chain to start from, and
whether the target is inside the recoverable window at all."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from spectral.errors import CouldNotVerify, UsageError
from spectral.pg.binaries import PgBinaries
from spectral.providers.base import Backup, RecoverableWindow, RecoveryTarget, TargetKind
from spectral.providers.local import walread
from spectral.providers.local.repo import Repository
from spectral.providers.local.wal import format_lsn, parse_lsn
from spectral.providers.local.window import lineage_segments, usable_backups


@dataclass(frozen=True)
class RestorePlan:
    target: RecoveryTarget
    chain: list[Backup]            # the full backup and incrementals, oldest first
    target_lsn: int | None         # where the target is in the WAL, when known


def parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--target-time {text!r}: expected an ISO 8601 time such as "
                         f"2026-11-26T21:30:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _outside(what: str, window: RecoverableWindow) -> UsageError:
    msg = f"{what} is outside the recoverable window: {window.describe()}"
    if window.gaps:
        gap = window.gaps[0]
        latest = window.latest_time.isoformat(timespec="seconds") if window.latest_time else "?"
        msg += (f"; WAL segment {gap.missing_from} is missing from the archive, so the latest "
                f"reachable target is {latest} (LSN {window.latest_lsn})")
    return UsageError(msg)


def locate(bins: PgBinaries, repo: Repository, target: RecoveryTarget,
           window: RecoverableWindow) -> int | None:
    """The LSN of an xid's commit or of a named restore point; None for time, latest."""
    if target.kind is TargetKind.LSN:
        assert target.value is not None
        try:
            return parse_lsn(target.value)
        except ValueError:
            raise UsageError(f"--target-lsn {target.value!r}: expected an LSN such as "
                             f"0/3000060") from None
    if target.kind not in (TargetKind.XID, TargetKind.NAME):
        return None
    view, segments = lineage_segments(repo)   # xids repeat on an abandoned timeline
    assert window.earliest_lsn is not None
    first = parse_lsn(window.earliest_lsn) // (16 * 1024 * 1024)
    for seg in [s for s in segments if s.segno >= first - 1]:
        summary = walread.summarize(bins, view.where[seg], seg)
        if target.kind is TargetKind.XID:
            for rec in summary.commits:
                if str(rec.xid) == target.value:
                    if not rec.committed:
                        raise UsageError(f"transaction {target.value} aborted; there is "
                                         f"nothing to recover to before it")
                    return rec.lsn
        else:
            for lsn, name in summary.restore_points:
                if name == target.value:
                    return lsn
    what = "transaction" if target.kind is TargetKind.XID else "restore point"
    raise UsageError(f"{what} {target.value} is not in the WAL archive's recoverable window "
                     f"({window.describe()})")


def plan(bins: PgBinaries, repo: Repository, target: RecoveryTarget,
         window: RecoverableWindow, backup_id: str | None = None) -> RestorePlan:
    """The newest backup that precedes the target (or the one named), and the target's LSN."""
    backups = usable_backups(repo)
    if backup_id is not None:
        named = [b for b in backups if b.id == backup_id]
        if not named:
            known = ", ".join(b.id for b in backups) or "none"
            raise UsageError(f"backup {backup_id} is not a usable backup (usable: {known})")
    if not backups or window.empty:
        raise CouldNotVerify("there is no verified base backup to restore from",
                             hint="spectral dr backup")
    assert window.latest_lsn is not None and window.earliest_lsn is not None
    lsn = locate(bins, repo, target, window)
    if target.kind is TargetKind.LATEST:
        chosen = backups[-1]
    elif target.kind is TargetKind.TIME:
        assert target.value is not None
        when = parse_time(target.value)
        assert window.earliest_time is not None and window.latest_time is not None
        if not window.earliest_time <= when <= window.latest_time:
            raise _outside(f"--target-time {when.isoformat()}", window)
        fitting = [b for b in backups if b.stop_time <= when]
        if not fitting:
            raise _outside(f"--target-time {when.isoformat()}", window)
        chosen = fitting[-1]
    else:
        assert lsn is not None
        if not parse_lsn(window.earliest_lsn) <= lsn <= parse_lsn(window.latest_lsn):
            raise _outside(f"{target.describe()} (LSN {format_lsn(lsn)})", window)
        fitting = [b for b in backups if parse_lsn(b.stop_lsn) <= lsn]
        if not fitting:
            raise _outside(f"{target.describe()} (LSN {format_lsn(lsn)})", window)
        chosen = fitting[-1]
    if backup_id is not None:
        named_backup = named[0]
        if parse_lsn(named_backup.stop_lsn) > parse_lsn(chosen.stop_lsn):
            raise UsageError(f"backup {backup_id} ends after {target.describe()}; a restore "
                             f"cannot stop before its backup's consistency point")
        chosen = named_backup
    return RestorePlan(target, repo.chain(chosen), lsn)
