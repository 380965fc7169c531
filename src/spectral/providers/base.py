"""The provider interface and the records it deals in.

Drills, playbooks and posture see a provider only through `Provider`: what it can do is in the
objects it hands out (`wal_archive()`, `retention()`, ... in capabilities.py, None when it lacks
one) and in its `capabilities` flags, never in its class. The operation that needs what a
provider lacks is refused with a UsageError naming what to do instead."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from spectral.confirm import Operator
from spectral.errors import CouldNotVerify, UsageError
from spectral.providers.capabilities import (
    NO_OPTIONS,
    BackupOptions,
    InPlaceUndo,
    Options,
    RecoveryReached,
    RestoredInstances,
    Retention,
    WalArchive,
    WalStatus,
    WalStream,
    archive_of,
)
from spectral.providers.integrity import CopyIntegrity

__all__ = ["WalArchive", "archive_of"]   # where they were first
from spectral.recovery_target import RecoveryTarget
from spectral.verify.document import Fingerprint
from spectral.verify.reader import DsnReader, Reader


class BackupKind(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"


class Verification(StrEnum):
    VERIFIED = "verified"
    FAILED = "failed"
    NOT_VERIFIED = "not_verified"


@dataclass(frozen=True)
class Backup:
    id: str
    kind: BackupKind
    parent: str | None
    start_lsn: str
    stop_lsn: str
    start_time: datetime
    stop_time: datetime
    timeline: int
    size_bytes: int
    duration_s: float
    server_version: str
    verification: Verification
    verification_detail: str = ""
    status: str = "completed"      # the provider's word for it (Supabase: COMPLETED, ...)
    physical: bool = True

    @property
    def usable(self) -> bool:
        return self.verification is not Verification.FAILED and \
            self.status.lower() == "completed"

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind.value, "parent": self.parent,
                "start_lsn": self.start_lsn, "stop_lsn": self.stop_lsn,
                "start_time": self.start_time.isoformat(), "stop_time": self.stop_time.isoformat(),
                "timeline": self.timeline, "size_bytes": self.size_bytes,
                "duration_s": round(self.duration_s, 3), "server_version": self.server_version,
                "verification": self.verification.value,
                "verification_detail": self.verification_detail, "status": self.status,
                "physical": self.physical}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Backup:
        return cls(d["id"], BackupKind(d["kind"]), d.get("parent"), d["start_lsn"], d["stop_lsn"],
                   datetime.fromisoformat(d["start_time"]), datetime.fromisoformat(d["stop_time"]),
                   int(d["timeline"]), int(d["size_bytes"]), float(d["duration_s"]),
                   d["server_version"], Verification(d["verification"]),
                   d.get("verification_detail", ""), d.get("status", "completed"),
                   bool(d.get("physical", True)))


@dataclass(frozen=True)
class WalGap:
    after_segment: str
    missing_from: str
    missing_to: str
    timeline: int
    problem: str = "is missing from the archive"   # or why the segment cannot be read
    from_lsn: str | None = None   # where the WAL that cannot be read begins (None: the segment)


@dataclass(frozen=True)
class WindowInterval:
    """One stretch of the recoverable window: from a backup's consistency point to the last
    record (`end_lsn`; `wal_end` is where the WAL ends after it) and the last commit
    (`end_time`) before a hole in the WAL or the end of the archive."""

    start_time: datetime
    start_lsn: str
    end_time: datetime
    end_lsn: str
    wal_end: str
    backups: list[str]

    def describe(self) -> str:
        return (f"{_ms(self.start_time)} (LSN {self.start_lsn}) to {_ms(self.end_time)} "
                f"(LSN {self.end_lsn})")

    def to_json(self) -> dict[str, Any]:
        return {"start_time": _t(self.start_time), "start_lsn": self.start_lsn,
                "end_time": _t(self.end_time), "end_lsn": self.end_lsn,
                "wal_end": self.wal_end, "backups": self.backups}


@dataclass(frozen=True)
class RecoverableWindow:
    earliest_time: datetime | None
    earliest_lsn: str | None
    latest_time: datetime | None
    latest_lsn: str | None
    timeline: int | None
    gaps: list[WalGap] = field(default_factory=list)
    intervals: list[WindowInterval] = field(default_factory=list)
    wal_end: str | None = None

    @property
    def empty(self) -> bool:
        return self.earliest_lsn is None

    def describe(self) -> str:
        if self.empty:
            return "no recoverable window (no verified base backup)"
        if len(self.intervals) > 1:
            return " and ".join(i.describe() for i in self.intervals)
        return (f"{_ms(self.earliest_time)} (LSN {self.earliest_lsn}) to "
                f"{_ms(self.latest_time)} (LSN {self.latest_lsn})")

    def to_json(self) -> dict[str, Any]:
        return {"earliest_time": _t(self.earliest_time), "earliest_lsn": self.earliest_lsn,
                "latest_time": _t(self.latest_time), "latest_lsn": self.latest_lsn,
                "timeline": self.timeline, "wal_end": self.wal_end,
                "intervals": [i.to_json() for i in self.intervals],
                "gaps": [g.__dict__ for g in self.gaps]}


def _t(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _ms(value: datetime | None) -> str | None:
    """For messages: a window that begins 0.5 s into the second a target names is shown so."""
    return value.isoformat(timespec="milliseconds") if value else None


@dataclass(frozen=True)
class Instance:
    """A throwaway instance a restore made (and what a drill's ledger entry keeps of it)."""

    id: str
    dsn: str
    port: int
    data_dir: str
    backup_id: str
    target: str
    created_at: str
    reached: RecoveryReached | None = None   # None: still restoring
    state: str = "ready"   # restoring, ready, paused; orphaned: the run that owned it was killed

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "dsn": self.dsn, "port": self.port, "data_dir": self.data_dir,
                "backup_id": self.backup_id, "target": self.target,
                "created_at": self.created_at,
                "reached": self.reached.to_json() if self.reached else {}, "state": self.state}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Instance:
        return cls(str(d["id"]), str(d["dsn"]), int(d["port"]), str(d["data_dir"]),
                   str(d.get("backup_id", "?")), str(d.get("target", "?")),
                   str(d.get("created_at", "?")), RecoveryReached.of(d.get("reached")),
                   str(d.get("state", "ready")))

    def when_kept(self) -> str:
        return f"instance kept: {self.dsn} (spectral dr teardown {self.id})"


class CopyRecord(Protocol):
    """What the ledger keeps of a restored copy (no secrets); what to say when it is kept."""
    def to_json(self) -> dict[str, Any]: ...
    def when_kept(self) -> str: ...


class Capability(StrEnum):
    """What not every provider can do that is a fact, not an object (the objects: the WAL
    archive, retention, restored instances, in-place undo, WAL streaming, backup options)."""

    UNATTENDED_COPY = "unattended_copy"    # a restored copy without anybody's action
    ON_DEMAND_BACKUP = "on_demand_backup"  # `dr backup` takes one now
    RECOVERY_OBSERVED = "recovery_observed"   # where recovery stopped is read, not assumed
    ANY_TARGET = "any_target"              # xid, LSN and restore-point targets, not only time


# progress(stage, done, total): stage "copy" counts bytes, "replay" counts WAL bytes
Progress = Callable[[str, int, int], None]
Report = Callable[[str], None]


class CopyMethod(StrEnum):
    RESTORE = "restore"      # a point-in-time restore of a backup
    BRANCH = "branch"        # a branch with data (proves less: no restore path, no time)


@dataclass(frozen=True)
class CopyRequest:
    """How the drill wants its throwaway copy made."""

    method: CopyMethod = CopyMethod.RESTORE
    backup_id: str | None = None           # restore from this backup
    existing: str | None = None            # a copy already made (by an operator): verify it
    existing_dsn: str | None = None        # its connection string (resolved secret)
    wait: float = 7200.0                   # how long to wait for an operator and the copy


@dataclass(frozen=True)
class DrillPoint:
    """The point a drill restores to and the snapshot it is compared with: `compare_at` None
    means a fresh snapshot, and `target` None means the point that snapshot was taken at
    (`Provider.target_after`)."""

    target: RecoveryTarget | None = None
    compare_at: datetime | None = None
    label: str = ""                        # what the point is, for the result
    instead: str = ""                      # what else to do when no snapshot is stored for it


@dataclass
class Copy:
    """A restored copy a drill verifies and then removes."""

    id: str
    dsn: str
    what: str                              # "instance r…", "project abc", "branch x (project y)"
    backup_id: str | None
    target: str                            # what it was restored to
    record: CopyRecord                     # what the ledger keeps of it (no secrets)
    reached: str | None = None             # where recovery stopped, when observed
    counts_as_rto: bool = True             # a branch's time is shown, not held to the RTO
    rerun: str | None = None               # how to verify it later, if it has to be kept
    kept_note: str = ""                    # what to do with it when kept
    reader: Reader | None = None           # how to read it without a DSN (a provider's API)
    integrity: CopyIntegrity | None = None   # its physical checks (None: the provider has none)

    def read(self) -> Reader:
        """How the drill's checks read the copy: its DSN, else the provider's reader."""
        if self.dsn:
            return DsnReader(self.dsn, self.what)
        if self.reader is None:
            raise CouldNotVerify(f"{self.what}: no connection string and no other way to "
                                 f"read it")
        return self.reader


@dataclass(frozen=True)
class InPlaceResult:
    """An in-place restore: the live database now holds the data at `target`."""

    environment: str
    where: str                             # "environment x", "Supabase project abc"
    target: str
    seconds: float
    detail: str                            # what was checked, what was kept
    backup: str | None = None
    previous: str | None = None            # where the replaced data is kept (undo)
    discarded: list[str] = field(default_factory=list)   # older kept-aside copies removed
    tables: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    reached: RecoveryReached | None = None   # None: not observed (Supabase's PITR)

    def to_json(self) -> dict[str, Any]:
        return {"environment": self.environment, "where": self.where, "target": self.target,
                "seconds": round(self.seconds, 1), "detail": self.detail,
                "backup": self.backup, "previous": self.previous, "discarded": self.discarded,
                "tables": {t: list(v) for t, v in self.tables.items()},
                "reached": self.reached.to_json() if self.reached else {}}


@dataclass(frozen=True)
class ReadinessItem:
    """One of the runbook's PITR activation preconditions, checked against the real thing."""

    text: str
    done: bool
    evidence: str


class Provider(Protocol):
    """What drills, playbooks and posture need from wherever the backups live."""

    kind: str
    capabilities: frozenset[Capability]

    def describe(self) -> str:
        """The production database this provider protects, for confirmations and reports."""

    def busy(self, what: str) -> contextlib.AbstractContextManager[None]:
        """Hold the environment's operation lock (one restore, backup or drill at a time)."""

    def source(self) -> contextlib.AbstractContextManager[str]:
        """The production database's connection string for the block (started if needed)."""

    def running_source(self) -> str | None:
        """Its connection string if it is reachable now, without starting anything."""

    def instead(self, capability: str) -> str:
        """What to do instead of what needs `capability` (a name from capabilities.py, e.g.
        "wal_stream"), which this provider lacks; "" when there is nothing to say."""

    # backups and the recoverable window
    def backup(self, options: Options = NO_OPTIONS) -> Backup:
        """Take a backup now, with options `backup_options()` parsed (ON_DEMAND_BACKUP)."""

    def backups(self) -> list[Backup]: ...

    def window(self) -> RecoverableWindow: ...

    def pitr_enabled(self) -> bool: ...

    def live_lineage(self) -> set[str] | None:
        """The backups on the timeline restores follow (None: the provider has one line)."""

    def archive_status(self) -> dict[str, Any] | None:
        """WAL shipping figures for `dr status` (None when they cannot be read now)."""

    def pitr_readiness(self, operator: Operator, report: Report,
                       options: Options = NO_OPTIONS) -> list[ReadinessItem]:
        """The runbook's activation steps 1 and 2 for this provider, checked; `options` are
        the provider's own (Supabase: {"addon": "pitr_7"} buys the add-on), refused by one
        that declares none."""

    # copies for drills
    def tidy(self, report: Report) -> None:
        """Remove copies an interrupted run left behind."""

    def drill_point(self, request: CopyRequest, at: datetime | None) -> DrillPoint: ...

    def target_after(self, snapshot: Fingerprint, request: CopyRequest) -> RecoveryTarget:
        """The target that restores exactly the state a fresh snapshot saw."""

    def provision_copy(self, target: RecoveryTarget, request: CopyRequest, operator: Operator,
                       report: Report, progress: Progress | None = None) -> Copy: ...

    def keep_copy(self, copy: Copy) -> None: ...

    def remove_copy(self, copy: Copy, operator: Operator, report: Report) -> None: ...

    def restored_through(self, copy: Copy, snapshot: Fingerprint,
                         restored: Fingerprint) -> datetime | None:
        """The newest commit the copy holds (for the RPO), when the provider can tell."""

    # restores for incidents
    def restore_new(self, target: RecoveryTarget, operator: Operator,
                    report: Report) -> Copy:
        """Restore into a new database that stays up (failover)."""

    def restore_in_place(self, target: RecoveryTarget, *, confirmed: bool,
                         report: Report, progress: Progress | None = None) -> InPlaceResult: ...

    # what not every provider can do: an object, or None (capabilities.py)
    def wal_archive(self) -> WalArchive | None:
        """The WAL archive: find-damage, salvage, the exact losses of a rewind."""

    def backup_options(self) -> BackupOptions | None: ...

    def retention(self) -> Retention | None: ...

    def restored_instances(self) -> RestoredInstances | None: ...

    def in_place_undo(self) -> InPlaceUndo | None: ...

    def wal_stream(self) -> WalStream | None: ...

    def wal_status(self) -> WalStatus | None: ...


def require(provider: Provider, capability: Capability, what: str, instead: str = "") -> None:
    """Refuse `what` on a provider without `capability`, saying what to do instead."""
    if capability not in provider.capabilities:
        raise UsageError(f"{what} needs {capability.value.replace('_', ' ')}, which "
                         f"{provider.describe()} ({provider.kind}) does not offer"
                         + (f"; {instead}" if instead else ""))
