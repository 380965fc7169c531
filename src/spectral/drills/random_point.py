"""Drills at old points (`dr drill functional --point random`): a stored snapshot older than a
given age, chosen with a recorded seed, restored to its exact LSN from the OLDEST backup that
can reach it, and compared with that snapshot. Last night's backup restoring proves little about
the retention chain; restoring weeks of WAL onto the oldest backup still kept proves all of it.

A snapshot is a candidate when the recoverable window still holds its LSN and a backup of the
same stretch of WAL ends at or before it (what `dr expire` removed cannot be drilled: such
snapshots are skipped and counted). The same seed over the same candidates picks the same one."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from spectral.config.durations import format_duration
from spectral.errors import CouldNotVerify, UsageError
from spectral.providers.base import Capability, DrillPoint
from spectral.providers.capabilities import missing
from spectral.recovery_target import LsnTarget, parse_lsn_text
from spectral.verify import snapshots

if TYPE_CHECKING:
    from spectral.ledger import Ledger
    from spectral.providers.base import Backup, CopyRequest, Provider, RecoverableWindow
    from spectral.verify.snapshots import SnapshotRef

DEFAULT_OLDER_THAN = 7 * 86400.0    # a week: older than the backup a nightly drill restores
OUTSIDE = "outside the recoverable window (their backups or WAL expired)"
IN_HOLE = "in a hole in the WAL archive"
NO_BACKUP = "after no backup of their stretch of WAL"
PAST_END = "past the end of the archived WAL"


@dataclass(frozen=True)
class RandomPoint:
    """What `--point random` asks for: a snapshot at least `older_than` seconds old, chosen
    with `seed` (None: a fresh one, recorded)."""

    older_than: float = DEFAULT_OLDER_THAN
    seed: int | None = None


@dataclass(frozen=True)
class Candidate:
    snapshot: SnapshotRef
    backup: Backup          # the oldest backup that reaches its LSN


@dataclass(frozen=True)
class Picked:
    """The choice, as the drill's result and ledger entry keep it (`point`)."""

    seed: int
    candidate: Candidate
    candidates: int
    older_than: float
    skipped: dict[str, int] = field(default_factory=dict)   # why -> how many

    def point(self) -> DrillPoint:
        ref = self.candidate.snapshot
        return DrillPoint(LsnTarget(parse_lsn_text(ref.lsn), exclusive=True), ref.taken_at,
                          f"LSN {ref.lsn} (exclusive), the snapshot of {ref.taken_at.isoformat()}"
                          f" chosen at random (seed {self.seed}) from {self.candidates}")

    def describe(self) -> str:
        return (f"chose the snapshot of {self.candidate.snapshot.taken_at.isoformat()} (seed "
                f"{self.seed}, {self.candidates} candidate(s)), from backup "
                f"{self.candidate.backup.id}, the oldest that reaches it")

    def to_json(self) -> dict[str, Any]:
        ref = self.candidate.snapshot
        return {"kind": "random", "seed": self.seed, "older_than_s": self.older_than,
                "snapshot": f"snapshots/{ref.path.name}", "snapshot_lsn": ref.lsn,
                "snapshot_taken_at": ref.taken_at.isoformat(),
                "backup_id": self.candidate.backup.id, "candidates": self.candidates,
                "skipped": dict(self.skipped)}


def refuse_unless_able(provider: Provider, request: CopyRequest, target_time: bool) -> None:
    """A provider that cannot restore to an LSN from a backup it is told refuses in one line;
    so do flags that name another point or backup."""
    for capability, what in ((Capability.ANY_TARGET, "an LSN target"),
                             (Capability.CHOSEN_BACKUP, "a restore from a chosen backup")):
        if capability not in provider.capabilities:
            raise missing(provider, f"--point random ({what})", capability.value)
    if target_time or request.backup_id is not None:
        raise UsageError("--point random chooses the recovery point and the backup itself: "
                         "drop --target-time and --backup (--seed N replays a choice)")


def pick(provider: Provider, ledger: Ledger, ask: RandomPoint,
         now: datetime | None = None) -> Picked:
    """Choose the snapshot and the backup (module docstring); CouldNotVerify (exit 3) when no
    snapshot is old enough and still reachable."""
    archive = provider.wal_archive()
    if archive is not None:   # the newest candidates' WAL in the archive, if the source is up
        archive.flush()
    ledger.sync()
    return choose(snapshots.listing(ledger.dir), provider.window(), provider.backups(), ask,
                  now or datetime.now(UTC))


def choose(refs: list[SnapshotRef], window: RecoverableWindow, backups: list[Backup],
           ask: RandomPoint, now: datetime) -> Picked:
    """`pick` without the provider (pure)."""
    seed = ask.seed if ask.seed is not None else random.SystemRandom().randrange(2**31)
    horizon = now - timedelta(seconds=ask.older_than)
    old = sorted((r for r in refs if r.taken_at <= horizon), key=lambda r: (r.taken_at, r.lsn))
    found: list[Candidate] = []
    skipped: dict[str, int] = {}
    for ref in old:
        backup, why = oldest_reaching(parse_lsn_text(ref.lsn), window, backups)
        if backup is None:
            skipped[why] = skipped.get(why, 0) + 1
        else:
            found.append(Candidate(ref, backup))
    if not found:
        raise CouldNotVerify(_none_old_enough(refs, ask.older_than, skipped, now))
    chosen = random.Random(seed).choice(found)
    return Picked(seed, chosen, len(found), ask.older_than, skipped)


def oldest_reaching(lsn: int, window: RecoverableWindow,
                    backups: list[Backup]) -> tuple[Backup | None, str]:
    """The oldest usable backup from which recovery reaches `lsn`: one of the window's stretch
    of WAL holding it, consistent (its stop LSN) at or before it; else None and why not."""
    if window.empty or not window.intervals or \
            lsn < parse_lsn_text(window.intervals[0].start_lsn):
        return None, OUTSIDE
    for iv in window.intervals:
        if not parse_lsn_text(iv.start_lsn) <= lsn <= parse_lsn_text(iv.wal_end):
            continue
        pool = [b for b in backups if b.id in iv.backups and b.usable
                and parse_lsn_text(b.stop_lsn) <= lsn]
        if not pool:
            return None, NO_BACKUP
        return min(pool, key=lambda b: (parse_lsn_text(b.stop_lsn), b.stop_time)), ""
    last = window.intervals[-1]
    return None, (PAST_END if lsn > parse_lsn_text(last.wal_end) else IN_HOLE)


def _none_old_enough(refs: list[SnapshotRef], older_than: float, skipped: dict[str, int],
                     now: datetime) -> str:
    wanted = f"no stored snapshot older than {format_duration(older_than)} to drill"
    if not refs:
        return (f"{wanted}: the evidence store has none (spectral dr snapshot after every "
                f"backup keeps them)")
    oldest = min(refs, key=lambda r: r.taken_at)
    age = format_duration((now - oldest.taken_at).total_seconds())
    why = "; ".join(f"{n} skipped, {reason}" for reason, n in skipped.items())
    return (f"{wanted}: the oldest, of {oldest.taken_at.isoformat(timespec='seconds')}, is "
            f"{age} old" + (f" ({why})" if why else "") +
            "; take snapshots after every backup (spectral dr snapshot) or ask for younger "
            "ones (--older-than)")
