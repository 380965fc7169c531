"""pg_waldump's text: WAL locations, commit and abort records, and its time format. The same
for every provider whose WAL can be read (pg_waldump is PostgreSQL's, not a provider's)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime


def parse_lsn(text: str) -> int:
    hi, _, lo = text.partition("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


COMMIT_RE = re.compile(
    r"rmgr: Transaction .*?lsn: (?P<lsn>[0-9A-F]+/[0-9A-F]+).*?desc: (?P<kind>COMMIT|ABORT) "
    r"(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? ?[A-Z+\-0-9:]*)")
XID_RE = re.compile(r"tx:\s+(\d+)")


@dataclass(frozen=True)
class CommitRecord:
    lsn: int
    xid: int
    time: datetime
    committed: bool


def parse_commit_line(line: str) -> CommitRecord | None:
    m = COMMIT_RE.search(line)
    x = XID_RE.search(line)
    if not m or not x:
        return None
    return CommitRecord(parse_lsn(m.group("lsn")), int(x.group(1)), parse_pg_time(m.group("time")),
                        m.group("kind") == "COMMIT")


def parse_pg_time(text: str) -> datetime:
    """pg_waldump prints commit times like '2026-11-26 21:30:01.123456 UTC'."""
    text = text.strip()
    if text.endswith(" UTC"):
        text = text[:-4] + "+00:00"
    text = re.sub(r" ([+-]\d\d)$", r"\1:00", text)
    return datetime.fromisoformat(text.replace(" ", "T", 1))
