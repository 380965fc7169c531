"""What not every provider can do, as objects.

A provider hands each optional capability out as a small object, or None when it lacks it
(`wal_archive()` is the first of them, in base.py): the command line asks for the object and,
given None, says in one line what the provider offers instead (`missing`). Nothing above
`providers/` asks which provider it has.

Options a provider's backups and restores take (pgBackRest's differential backups, its
repositories and processes) are the provider's own: the command line hands over the flags it was
given as a mapping, and the provider's `BackupOptions` checks them against what it declares."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from spectral.confirm import Confirmer
from spectral.errors import UsageError

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from spectral.pg.waldump import CommitRecord
    from spectral.providers.base import InPlaceResult, Instance, Progress, Provider
    from spectral.recovery_target import RecoveryTarget

Json = dict[str, Any]
# the flags given (`dr backup --type diff --repo 2` -> {"type": "diff", "repo": 2}), by name
Options = Mapping[str, object]
NO_OPTIONS: Options = {}


class WalArchive(Protocol):
    """Read access to a provider's WAL archive: find-damage, salvage, exact losses."""

    @property
    def state_dir(self) -> Path:
        """Where the environment keeps its snapshots (a dropped table's storage is found
        through them)."""

    def flush(self) -> str | None:
        """Make every commit so far part of the archive (switch and wait), if the source is up;
        the segment that was flushed, or None."""

    def waldump(self) -> Iterator[str]:
        """The live lineage's records, as pg_waldump prints them, oldest first."""

    def locate(self, target: RecoveryTarget) -> int | None:
        """The LSN of an xid's commit, a restore point or an LSN target; None for times."""

    def newest_commit_before(self, lsn: str) -> datetime | None: ...

    def commits_near(self, lsn: str) -> list[CommitRecord] | None:
        """The records that end a transaction from the segment before `lsn`'s on, oldest
        first (a snapshot's LSN checked: verify/pinning.py); None: the archive ends before."""

    def commits_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]: ...


def archive_of(provider: Provider, what: str) -> WalArchive:
    """The provider's WAL archive, or the one-line refusal of `what`, which needs it."""
    archive = provider.wal_archive()
    if archive is None:
        raise missing(provider, what, "wal_archive")
    return archive


class BackupOptions(Protocol):
    """The options a provider's backups and restores take, declared and parsed by it."""

    def declared(self) -> dict[str, str]:
        """Option name -> what it does (for messages and help)."""

    def parse(self, given: Options, *, restore: bool = False) -> Options:
        """The options checked, for a backup (or a restore): a UsageError names the first one
        this provider does not take, or a value it does not accept."""


def refuse_options(given: Options, declared: Mapping[str, str], who: str) -> None:
    """The one-line refusal of an option a provider does not declare."""
    for name in given:
        if name not in declared:
            takes = ", ".join(f"--{n.replace('_', '-')}" for n in declared) or "no options"
            raise UsageError(f"--{name.replace('_', '-')}: {who} does not take it (it takes "
                             f"{takes})")


@dataclass
class ExpirePlan:
    """What a retention run keeps and removes (and, after it ran, what it swept)."""

    keep: list[str]
    remove: list[str]
    wal_remove: list[str] = field(default_factory=list)
    oldest_kept_start_lsn: str | None = None
    swept: list[str] = field(default_factory=list)   # left unlisted by a run that was killed


class Retention(Protocol):
    """Removing old backups and the WAL only they needed (`dr expire`)."""

    def expire(self, keep: int, window_days: float | None, operator: Confirmer, *,
               dry_run: bool = False) -> ExpirePlan: ...


class RestoredInstances(Protocol):
    """Throwaway instances a restore makes and keeps running (`dr restore`, `dr instances`,
    `dr teardown`, `dr promote`)."""

    def restore(self, target: RecoveryTarget, *, pause: bool = False,
                progress: Progress | None = None, options: Options = NO_OPTIONS,
                backup_id: str | None = None) -> Instance:
        """Restore into a new instance that stays up (`pause`: at the target, unpromoted);
        from `backup_id` when given, else the newest backup that reaches the target."""

    def listed(self) -> list[Instance]: ...

    def is_running(self, instance: Instance) -> bool: ...

    def teardown(self, instance_id: str) -> bool:
        """Stop it and delete its files; False when there is no such instance."""

    def orphans(self) -> list[str]:
        """Instances whose owning run was killed."""

    def promote(self, instance_id: str) -> Instance: ...


# ---- what an in-place restore and its undo report (JSON only at the --json edge) ----------
@dataclass(frozen=True)
class RecoveryReached:
    """Where PostgreSQL's recovery stopped, as its log says (providers/local/recovery.py), and
    what was left to resolve."""

    stopped: str | None                      # "before commit of transaction 1234, time ..."
    redo_done_lsn: str | None = None
    last_transaction: str | None = None
    paused: bool = False
    # transactions prepared before the target and finished after it: pending again (in place)
    prepared: tuple[str, ...] | None = None
    resolved: str | None = None              # how the restore plan was resolved, when it was

    def to_json(self) -> Json:
        return {"stopped": self.stopped, "redo_done_lsn": self.redo_done_lsn,
                "last_transaction": self.last_transaction, "paused": self.paused,
                **({"prepared": list(self.prepared)} if self.prepared is not None else {}),
                "resolved": self.resolved}

    @classmethod
    def from_json(cls, d: Json) -> RecoveryReached:
        prepared = d.get("prepared")
        return cls(d.get("stopped"), d.get("redo_done_lsn"), d.get("last_transaction"),
                   bool(d.get("paused", False)),
                   None if prepared is None else tuple(str(g) for g in prepared),
                   d.get("resolved"))

    @classmethod
    def of(cls, d: Json | None) -> RecoveryReached | None:
        """Where recovery stopped, as a restored instance's catalog keeps it (JSON); None:
        nothing was observed (an instance still restoring keeps `{}`)."""
        return cls.from_json(d) if d else None


@dataclass(frozen=True)
class UndoOutcome:
    """An undone in-place restore: the kept-aside data put back, the restore kept aside in its
    turn, and the timeline the database is on now (later restores follow it)."""

    environment: str
    restored: str                            # the data directory put back
    set_aside: str                           # where the undone restore's data is kept
    timeline: int

    def to_json(self) -> Json:
        return {"environment": self.environment, "restored": self.restored,
                "set_aside": self.set_aside, "timeline": self.timeline}

    @classmethod
    def from_json(cls, d: Json) -> UndoOutcome:
        return cls(str(d["environment"]), str(d["restored"]), str(d["set_aside"]),
                   int(d["timeline"]))


class InPlaceUndo(Protocol):
    """An in-place restore that keeps the data it replaced, so it can be undone."""

    def restore(self, target: RecoveryTarget, *, confirmed: bool,
                progress: Progress | None = None,
                options: Options = NO_OPTIONS) -> InPlaceResult: ...

    def undo(self, operator: Confirmer | None = None) -> UndoOutcome:
        """Undo the newest in-place restore (asking `operator` first, when given)."""

    def discard(self, operator: Confirmer | None = None) -> list[str]:
        """Delete the data kept aside by in-place restores (asking first, when given)."""

    def recover_if_idle(self) -> None:
        """Put right what a killed in-place restore or undo left, unless another command is
        working on the environment."""


class StreamRun(Protocol):
    restarts: int

    def to_json(self) -> dict[str, Any]: ...


class WalStream(Protocol):
    """Continuous WAL streaming into the repository (`dr wal stream`)."""

    def stream(self, *, synchronous: bool, should_stop: Callable[[], bool],
               outage_limit: float, report: Callable[[str], None]) -> StreamRun: ...


class WalStatus(Protocol):
    """The archive's and the stream's lag: the live RPO (`dr wal status`)."""

    def read(self) -> dict[str, Any]: ...


def missing(provider: Provider, what: str, capability: str) -> UsageError:
    """The one line that says `provider` cannot do `what`, and what it offers instead."""
    instead = provider.instead(capability)
    return UsageError(f"{what} needs {capability.replace('_', ' ')}, which "
                      f"{provider.describe()} ({provider.kind}) does not offer"
                      + (f"; {instead}" if instead else ""))
