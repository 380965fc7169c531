"""The provider interface and the records it deals in."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class BackupKind(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"


class Verification(StrEnum):
    VERIFIED = "verified"
    FAILED = "failed"
    NOT_VERIFIED = "not_verified"


class TargetKind(StrEnum):
    LATEST = "latest"
    TIME = "time"
    XID = "xid"
    LSN = "lsn"
    NAME = "name"


@dataclass(frozen=True)
class RecoveryTarget:
    """Where a restore stops. `exclusive` stops just before the target (xid, time, LSN)."""

    kind: TargetKind
    value: str | None = None
    exclusive: bool = False

    def describe(self) -> str:
        if self.kind is TargetKind.LATEST:
            return "latest"
        return f"{self.kind.value} {self.value}" + (" (exclusive)" if self.exclusive else "")


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

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind.value, "parent": self.parent,
                "start_lsn": self.start_lsn, "stop_lsn": self.stop_lsn,
                "start_time": self.start_time.isoformat(), "stop_time": self.stop_time.isoformat(),
                "timeline": self.timeline, "size_bytes": self.size_bytes,
                "duration_s": round(self.duration_s, 3), "server_version": self.server_version,
                "verification": self.verification.value,
                "verification_detail": self.verification_detail}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Backup:
        return cls(d["id"], BackupKind(d["kind"]), d.get("parent"), d["start_lsn"], d["stop_lsn"],
                   datetime.fromisoformat(d["start_time"]), datetime.fromisoformat(d["stop_time"]),
                   int(d["timeline"]), int(d["size_bytes"]), float(d["duration_s"]),
                   d["server_version"], Verification(d["verification"]),
                   d.get("verification_detail", ""))


@dataclass(frozen=True)
class WalGap:
    after_segment: str
    missing_from: str
    missing_to: str
    timeline: int


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
        return (f"{_t(self.start_time)} (LSN {self.start_lsn}) to {_t(self.end_time)} "
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
        return (f"{_t(self.earliest_time)} (LSN {self.earliest_lsn}) to {_t(self.latest_time)} "
                f"(LSN {self.latest_lsn})")

    def to_json(self) -> dict[str, Any]:
        return {"earliest_time": _t(self.earliest_time), "earliest_lsn": self.earliest_lsn,
                "latest_time": _t(self.latest_time), "latest_lsn": self.latest_lsn,
                "timeline": self.timeline, "wal_end": self.wal_end,
                "intervals": [i.to_json() for i in self.intervals],
                "gaps": [g.__dict__ for g in self.gaps]}


def _t(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


@dataclass
class Instance:
    """A throwaway instance a restore made."""

    id: str
    dsn: str
    port: int
    data_dir: str
    backup_id: str
    target: str
    created_at: str
    reached: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Provider(Protocol):
    """What the drills and playbooks need from wherever backups live."""

    def backups(self) -> list[Backup]: ...

    def window(self) -> RecoverableWindow: ...

    def restore(self, target: RecoveryTarget, *, pause: bool = False) -> Instance: ...

    def teardown(self, instance_id: str) -> bool: ...

    def instances(self) -> list[Instance]: ...
