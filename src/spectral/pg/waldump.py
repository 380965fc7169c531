"""pg_waldump's text: WAL locations, the records that end a transaction, and its time format.
The same for every provider whose WAL can be read (pg_waldump is PostgreSQL's, not a
provider's).

A transaction ends with one of four records, and PostgreSQL's recovery targets treat all four
alike (recoveryStopsBefore/After in xlogrecovery.c): COMMIT and ABORT carry the transaction's
xid as the record's `tx:`; COMMIT_PREPARED and ABORT_PREPARED (two-phase commit: COMMIT
PREPARED / ROLLBACK PREPARED) are written by whichever session finishes the prepared
transaction, so their `tx:` is that session's (usually 0) and the prepared transaction's xid is
in the description:

    desc: COMMIT 2026-12-05 07:32:57.911799 UTC; rels: base/5/16390; subxacts: 760
    desc: COMMIT_PREPARED 754: 2026-12-05 07:32:57.911799 UTC; rels: ...; subxacts: 760

(PostgreSQL 15 and 18 print these alike.) A PREPARE record does not end the transaction: its
changes become visible only at the COMMIT_PREPARED."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime


def parse_lsn(text: str) -> int:
    hi, _, lo = text.partition("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


# a WAL page's header: a segment's first page has the long one; a record starts after it
SHORT_HEADER, LONG_HEADER = 24, 40
COMMIT_RE = re.compile(
    r"rmgr: Transaction .*?lsn: (?P<lsn>[0-9A-F]+/[0-9A-F]+).*?"
    r"desc: (?P<kind>COMMIT|ABORT)(?P<prepared>_PREPARED (?P<pxid>\d+):)? "
    r"(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? ?[A-Z+\-0-9:]*)")
XID_RE = re.compile(r"tx:\s+(\d+)")
SUBXACTS_RE = re.compile(r"; subxacts: (\d+(?: \d+)*)")


@dataclass(frozen=True)
class CommitRecord:
    """A record that ends a transaction: its commit (or abort), by PostgreSQL's recovery
    targets' rules. `xid` is the transaction's (the prepared one's for COMMIT_PREPARED);
    `subxacts` are its subtransactions' xids, whose changes it commits with it."""

    lsn: int
    xid: int
    time: datetime
    committed: bool
    prepared: bool = False          # COMMIT_PREPARED or ABORT_PREPARED
    subxacts: tuple[int, ...] = ()


def parse_commit_line(line: str) -> CommitRecord | None:
    m = COMMIT_RE.search(line)
    if not m:
        return None
    if m.group("prepared"):
        xid = int(m.group("pxid"))
    elif x := XID_RE.search(line):
        xid = int(x.group(1))
    else:
        return None
    subs = SUBXACTS_RE.search(line, m.end())
    return CommitRecord(parse_lsn(m.group("lsn")), xid, parse_pg_time(m.group("time")),
                        m.group("kind") == "COMMIT", bool(m.group("prepared")),
                        tuple(int(s) for s in subs.group(1).split()) if subs else ())


def parse_pg_time(text: str) -> datetime:
    """pg_waldump prints commit times like '2026-11-26 21:30:01.123456 UTC'."""
    text = text.strip()
    if text.endswith(" UTC"):
        text = text[:-4] + "+00:00"
    text = re.sub(r" ([+-]\d\d)$", r"\1:00", text)
    return datetime.fromisoformat(text.replace(" ", "T", 1))
