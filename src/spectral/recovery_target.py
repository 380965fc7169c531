"""Recovery targets as the user gives them, checked once at the edge: a time that PostgreSQL
will accept, a transaction id that is a number, an LSN that parses. Every message is in the
user's terms and names the flag."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from spectral.errors import UsageError
from spectral.providers.base import RecoveryTarget, TargetKind

LSN_RE = re.compile(r"[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}")
NAME_MAX = 63   # a restore point's name is at most MAXFNAMELEN - 1 bytes


def parse_time(text: str, flag: str = "--target-time") -> datetime:
    """ISO 8601 with or without an offset (`Z` included); no offset means UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected an ISO 8601 time such as "
                         f"2026-11-26T21:30:00Z") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def check_xid(text: str) -> str:
    if not text.strip().isdigit() or int(text) < 3 or int(text) >= 2**32:
        raise UsageError(f"--target-xid {text!r}: expected a transaction id, a whole number such "
                         f"as 7421 (spectral dr find-damage lists them)")
    return str(int(text))


def check_lsn(text: str) -> str:
    if not LSN_RE.fullmatch(text.strip()):
        raise UsageError(f"--target-lsn {text!r}: expected a WAL location such as 0/3000060")
    hi, lo = text.strip().split("/")
    return f"{int(hi, 16):X}/{int(lo, 16):X}"


def check_name(text: str) -> str:
    if not text or len(text.encode()) > NAME_MAX:
        raise UsageError(f"--target-name {text!r}: expected a restore point name of 1 to "
                         f"{NAME_MAX} bytes")
    return text


def from_flags(latest: bool, time: str | None, xid: str | None, lsn: str | None,
               name: str | None, exclusive: bool) -> RecoveryTarget:
    """Exactly one target, validated and normalised."""
    flags: list[tuple[TargetKind, str | bool | None]] = [
        (TargetKind.LATEST, True if latest else None), (TargetKind.TIME, time),
        (TargetKind.XID, xid), (TargetKind.LSN, lsn), (TargetKind.NAME, name)]
    given = [(k, v) for k, v in flags if v is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of --latest, --target-time, --target-xid, "
                         "--target-lsn, --target-name")
    kind, value = given[0]
    if exclusive and kind not in (TargetKind.XID, TargetKind.TIME, TargetKind.LSN):
        raise UsageError("--exclusive goes with --target-xid, --target-time or --target-lsn")
    if kind is TargetKind.LATEST:
        return RecoveryTarget(kind)
    text = str(value)
    if kind is TargetKind.TIME:
        text = parse_time(text).isoformat()
    elif kind is TargetKind.XID:
        text = check_xid(text)
    elif kind is TargetKind.LSN:
        text = check_lsn(text)
    else:
        text = check_name(text)
    return RecoveryTarget(kind, text, exclusive)
