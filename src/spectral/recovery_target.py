"""Recovery targets: typed values, parsed and checked once at the edge (CLI flags, config,
a drill's snapshot) and passed on as values. Every parse error is in the user's terms and names
the flag.

    LatestTarget()                         the end of the recoverable WAL
    TimeTarget(datetime)                   a moment (timezone-aware)
    XidTarget(7421, exclusive=True)        a transaction's commit (just before it: exclusive)
    LsnTarget(0x3000060)                   a WAL location
    NameTarget("before-migration")         a restore point made with pg_create_restore_point
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import ClassVar

from spectral.errors import UsageError

LSN_RE = re.compile(r"[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}")
FRACTION_RE = re.compile(r"(?<=\d\d:\d\d:\d\d)\.(\d+)")
NAME_MAX = 63   # a restore point's name is at most MAXFNAMELEN - 1 bytes
XID_MIN, XID_LIMIT = 3, 2**32


class TargetKind(StrEnum):
    LATEST = "latest"
    TIME = "time"
    XID = "xid"
    LSN = "lsn"
    NAME = "name"


@dataclass(frozen=True)
class RecoveryTarget:
    """Where a restore stops. `exclusive` stops just before the target (xid, time, LSN)."""

    kind: ClassVar[TargetKind]
    exclusive: bool = field(default=False, kw_only=True)

    @property
    def value(self) -> str | None:
        """The target as PostgreSQL's recovery_target_* setting spells it (None: latest)."""
        return None

    def describe(self) -> str:
        if self.value is None:
            return self.kind.value
        return f"{self.kind.value} {self.value}" + (" (exclusive)" if self.exclusive else "")


@dataclass(frozen=True)
class LatestTarget(RecoveryTarget):
    kind: ClassVar[TargetKind] = TargetKind.LATEST

    def __post_init__(self) -> None:
        if self.exclusive:
            raise UsageError("--exclusive goes with --target-xid, --target-time or --target-lsn")


@dataclass(frozen=True)
class TimeTarget(RecoveryTarget):
    at: datetime
    kind: ClassVar[TargetKind] = TargetKind.TIME

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            object.__setattr__(self, "at", self.at.replace(tzinfo=UTC))

    @property
    def value(self) -> str:
        return self.at.isoformat()

    def stops_before(self, end_time: datetime) -> bool:
        """Whether PostgreSQL's recovery stops before a record that ends a transaction (a
        commit or an abort, two-phase ones included) at `end_time`: inclusive before one later
        than the target, exclusive before one at or after it, whichever comes first in the WAL
        (recoveryStopsBefore in xlogrecovery.c). Several commits can share a time: inclusive
        keeps them all, exclusive none."""
        return end_time >= self.at if self.exclusive else end_time > self.at


@dataclass(frozen=True)
class XidTarget(RecoveryTarget):
    xid: int
    kind: ClassVar[TargetKind] = TargetKind.XID

    def __post_init__(self) -> None:
        if not XID_MIN <= self.xid < XID_LIMIT:
            raise UsageError(f"--target-xid {self.xid}: expected a transaction id from "
                             f"{XID_MIN} to {XID_LIMIT - 1}")

    @property
    def value(self) -> str:
        return str(self.xid)


@dataclass(frozen=True)
class LsnTarget(RecoveryTarget):
    lsn: int
    kind: ClassVar[TargetKind] = TargetKind.LSN

    def __post_init__(self) -> None:
        if not 0 <= self.lsn < 2**64:
            raise UsageError(f"--target-lsn {self.lsn}: not a WAL location")

    @property
    def value(self) -> str:
        return f"{self.lsn >> 32:X}/{self.lsn & 0xFFFFFFFF:X}"


@dataclass(frozen=True)
class NameTarget(RecoveryTarget):
    name: str
    kind: ClassVar[TargetKind] = TargetKind.NAME

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.exclusive:
            raise UsageError("--exclusive goes with --target-xid, --target-time or --target-lsn")

    @property
    def value(self) -> str:
        return self.name


def parse_time(text: str, flag: str = "--target-time") -> datetime:
    """ISO 8601 with or without an offset (`Z` included); no offset means UTC. A fraction
    finer than microseconds is rounded as PostgreSQL rounds it (the fraction read as a double,
    then rint: ParseFractionalSecond in datetime.c), not truncated, so the target is the
    microsecond PostgreSQL's own recovery_target_time would compare commits with."""
    clean = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    micros = None
    if (m := FRACTION_RE.search(clean)) and len(m.group(1)) > 6:
        micros = round(float("0." + m.group(1)) * 1_000_000)
        clean = clean[:m.start()] + clean[m.end():]
    try:
        value = datetime.fromisoformat(clean)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected an ISO 8601 time such as "
                         f"2026-11-26T21:30:00Z") from None
    if micros is not None:
        value = value.replace(microsecond=0) + timedelta(microseconds=micros)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def check_xid(text: str) -> str:
    if not text.strip().isdigit() or not XID_MIN <= int(text) < XID_LIMIT:
        raise UsageError(f"--target-xid {text!r}: expected a transaction id, a whole number such "
                         f"as 7421 (spectral dr find-damage lists them)")
    return str(int(text))


def check_lsn(text: str) -> str:
    if not LSN_RE.fullmatch(text.strip()):
        raise UsageError(f"--target-lsn {text!r}: expected a WAL location such as 0/3000060")
    hi, lo = text.strip().split("/")
    return f"{int(hi, 16):X}/{int(lo, 16):X}"


def parse_lsn_text(text: str) -> int:
    hi, lo = check_lsn(text).split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def check_name(text: str) -> str:
    if not text or len(text.encode()) > NAME_MAX:
        raise UsageError(f"--target-name {text!r}: expected a restore point name of 1 to "
                         f"{NAME_MAX} bytes")
    return text


def target_of(kind: TargetKind, text: str | None = None, exclusive: bool = False
              ) -> RecoveryTarget:
    """One target from its kind and the user's text, validated and normalised."""
    if exclusive and kind not in (TargetKind.XID, TargetKind.TIME, TargetKind.LSN):
        raise UsageError("--exclusive goes with --target-xid, --target-time or --target-lsn")
    if kind is TargetKind.LATEST:
        return LatestTarget()
    if text is None:
        raise UsageError(f"--target-{kind.value} needs a value")
    if kind is TargetKind.TIME:
        return TimeTarget(parse_time(text), exclusive=exclusive)
    if kind is TargetKind.XID:
        return XidTarget(int(check_xid(text)), exclusive=exclusive)
    if kind is TargetKind.LSN:
        return LsnTarget(parse_lsn_text(text), exclusive=exclusive)
    return NameTarget(check_name(text))


def from_flags(latest: bool, time: str | None, xid: str | None, lsn: str | None,
               name: str | None, exclusive: bool) -> RecoveryTarget:
    """Exactly one target from the CLI's flags, validated and normalised."""
    flags: list[tuple[TargetKind, str | bool | None]] = [
        (TargetKind.LATEST, True if latest else None), (TargetKind.TIME, time),
        (TargetKind.XID, xid), (TargetKind.LSN, lsn), (TargetKind.NAME, name)]
    given = [(k, v) for k, v in flags if v is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of --latest, --target-time, --target-xid, "
                         "--target-lsn, --target-name")
    kind, value = given[0]
    return target_of(kind, None if kind is TargetKind.LATEST else str(value), exclusive)
