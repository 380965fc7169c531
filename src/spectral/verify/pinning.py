"""Which recovery point a snapshot stands for, checked against the WAL's commit records.

A drill restores its copy to the LSN its snapshot was read at, excluding the record that
starts there, and expects the copy to hold exactly the transactions the snapshot saw. That
holds only when the snapshot saw every commit record before the LSN and none after it. Two
ways it can fail (both a false FAIL of a good backup, never a false PASS):

- On a primary, a transaction becomes visible (ProcArrayEndTransaction) after its commit
  record is inserted, and with synchronous_commit=off before it is written; and a commit
  record inserted but still being flushed (or waiting for a synchronous standby) is not
  visible yet. So the snapshot's visible set need not be the commits before any one LSN read
  beside it. The LSN is now the insert position read right after the snapshot
  (pg_current_wal_insert_lsn: every commit the snapshot sees was inserted before it), and the
  commit records around it are checked against the snapshot's own xmin, xmax and running
  xids (pg_current_snapshot): when the snapshot sees a prefix of the commits in WAL order, the
  LSN is moved to that prefix's end; when it does not (a commit visible before an older one),
  no LSN stands for it and the snapshot is taken again.
- On a hot standby, the startup process makes a commit visible before it advances the replay
  LSN past the record (xact_redo_commit, then ApplyWalRecord), so a snapshot whose two reads
  of the replay LSN agree may still see the commit of the record being replayed. Nothing
  can be mid-replay when everything received is replayed (pg_last_wal_receive_lsn equals the
  replay LSN); otherwise the record right after the LSN is read from the archive: not a
  commit, or a commit the snapshot's xids prove unseen (below), and the LSN stands; a commit
  they prove seen, and the LSN is the next record that ends a transaction; else, when replay
  still stands at the LSN a moment later (replica.replay_still: waiting before the record,
  as a paused or delayed replica does, not in the middle of it) it stands too; else the
  snapshot is taken again.
- On a hot standby whose replay moved between the read before the snapshot and the one in
  its statement (`before`, then the LSN), the snapshot saw a prefix, in WAL order, of the
  records that end a transaction between the two (replay is one process, and each record
  makes its transaction visible under the lock a snapshot takes). Which prefix, its xids
  tell (procarray.c, in recovery; a standby's snapshot lists no running xids: they are all
  in subxip, which no function shows). xmax is latestCompletedXid + 1, which replay of an
  end record raises to the newest xid of its tree; xmin is the oldest xid replay knows
  running, or xmax. A record whose tree has an xid at or past xmax, or whose xid is xmin,
  was not replayed. A commit whose xid is below xmin was: below latestCompletedXid, its xid
  is known running until its own record is replayed (or a running-xacts record past that
  says it ended). A commit whose newest xid is xmax - 1 was: nothing else sets
  latestCompletedXid to that xid. The LSN is the first record proved unseen; when a commit
  lies between the last proved seen and the first proved unseen, no LSN is known and the
  snapshot is taken again. An abort or a prepared transaction's end counts only when proved
  unseen (a subtransaction's xid leaves the running ones on an assignment record).

The archive is flushed and read for it (`against`): on a standby before the scan (a snapshot
taken again then costs nothing, and the primary's xmin is not the replica's), on a primary
after it, once the snapshot is let go (moving the LSN needs no second scan; a snapshot taken
again does).

What is not checked: commits older than the segment before the LSN (a commit in flight for
longer than a segment of WAL, on a primary), sequences (not MVCC: read before the snapshot, so
that a copy logged ahead at the LSN is not behind them, unless the LSN is moved back past a
sequence's WAL record written before that read), and a standby commit whose replay goes on
for longer than the moment after making it visible (one that drops a large table's files on a
slow disk)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spectral.pg.waldump import LONG_HEADER, SHORT_HEADER, CommitRecord, format_lsn, parse_lsn

XID_SPACE = 1 << 32


class Unpinned(Exception):
    """No LSN is known to stand for this snapshot: it is dropped and taken again. `settles`:
    it would stand if a standby's replay has not moved a moment later (replica.replay_still)."""

    def __init__(self, reason: str, *, settles: bool = False) -> None:
        self.reason, self.settles = reason, settles
        super().__init__(reason)


@dataclass(frozen=True)
class SnapshotXids:
    """pg_current_snapshot(): xmin, xmax and the running top-level xids (epoch-qualified). On
    a standby the list is empty whatever runs (`complete` False)."""

    xmin: int
    xmax: int
    xip: frozenset[int]
    complete: bool = True

    @classmethod
    def parse(cls, text: str, *, complete: bool = True) -> SnapshotXids:
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), frozenset(int(x) for x in xip.split(",") if x),
                   complete)

    def widen(self, xid: int) -> int:
        """A WAL record's 32-bit xid with the epoch that puts it nearest xmax."""
        full = (self.xmax & ~(XID_SPACE - 1)) | xid
        if full > self.xmax + XID_SPACE // 2:
            full -= XID_SPACE
        elif full < self.xmax - XID_SPACE // 2:
            full += XID_SPACE
        return full

    def sees(self, xid: int) -> bool:
        """Whether the snapshot sees the commit of `xid` (a primary's snapshot only)."""
        full = self.widen(xid)
        return full < self.xmin or (full < self.xmax and full not in self.xip)


@dataclass(frozen=True)
class PinFacts:
    """What the snapshot's statement read: the LSN, the snapshot's xids and, on a standby,
    how far WAL was received (None on a primary, or a standby fed by restore_command)."""

    lsn: str
    xids: SnapshotXids
    in_recovery: bool
    received: str | None = None
    before: str | None = None   # a standby's replay LSN before the snapshot, when it moved


def pin(facts: PinFacts, commits: list[CommitRecord]) -> str:
    """The LSN the snapshot stands for (the one it was read at, or moved to the end of the
    commits it saw), given the records that end transactions from the segment before the LSN
    to past it, oldest first; Unpinned when none does."""
    if facts.in_recovery:
        return _pin_standby(facts, commits)
    return _pin_primary(facts, [c for c in commits if c.committed])


def _pin_primary(facts: PinFacts, commits: list[CommitRecord]) -> str:
    at, snap = parse_lsn(facts.lsn), facts.xids
    seen = [snap.sees(c.xid) for c in commits]
    if all(s == (c.lsn < at) for s, c in zip(seen, commits, strict=True)):
        return facts.lsn
    prefix = seen.index(False) if False in seen else len(seen)
    if any(seen[prefix:]):
        late, early = commits[seen.index(True, prefix)], commits[prefix]
        raise Unpinned(f"the snapshot sees the commit of xid {late.xid} (LSN "
                       f"{format_lsn(late.lsn)}) but not the earlier one of xid {early.xid} "
                       f"(LSN {format_lsn(early.lsn)}): no LSN stands for it")
    if prefix < len(commits):
        return format_lsn(commits[prefix].lsn)   # stop right before the first commit unseen
    return format_lsn(commits[-1].lsn + 1)       # every commit seen: stop after the last


def _pin_standby(facts: PinFacts, commits: list[CommitRecord]) -> str:
    at = parse_lsn(facts.lsn)
    if facts.before is not None and (unseen := _first_unseen(facts, commits)) is not None:
        return unseen
    if facts.received is not None and parse_lsn(facts.received) == at:
        return facts.lsn     # everything received was replayed: nothing was mid-replay
    nxt = next((c for c in commits if c.lsn >= at), None)
    if nxt is None or not nxt.committed or nxt.lsn > _aligned(at) + LONG_HEADER:
        return facts.lsn     # the record being replayed, if any, committed nothing
    replayed = _replayed(facts.xids, nxt)
    if replayed is False:
        return facts.lsn     # e.g. its replay would have raised xmax past its xids: not seen
    after = next((c for c in commits if c.lsn > nxt.lsn), None)
    if replayed and after is not None:
        return format_lsn(after.lsn)   # seen mid-replay: the copy stops before the next end
    raise Unpinned(f"the commit of xid {nxt.xid} right after LSN {facts.lsn} may have been "
                   f"replayed as the snapshot was taken", settles=replayed is None)


def _first_unseen(facts: PinFacts, commits: list[CommitRecord]) -> str | None:
    """Where the prefix a standby's snapshot saw ends among the records that end a transaction
    between `before` and the LSN: the first proved unseen, or None when it saw them all."""
    assert facts.before is not None
    start, at = parse_lsn(facts.before), parse_lsn(facts.lsn)
    if at < start:
        raise Unpinned(f"replay went back from {facts.before} to {facts.lsn}")
    between = [c for c in commits if start <= c.lsn < at]
    seen = [_replayed(facts.xids, c) for c in between]
    last = max((i for i, s in enumerate(seen) if s), default=-1)
    first = next((i for i, s in enumerate(seen) if s is False), len(seen))
    if first < last:
        raise Unpinned(f"the snapshot's xids say it saw the commit of xid {between[last].xid} "
                       f"but not the earlier record of xid {between[first].xid}")
    unknown = [c for c in between[last + 1:first] if c.committed]
    if unknown:
        raise Unpinned(f"replay moved from {facts.before} to {facts.lsn} as the snapshot was "
                       f"taken, and its xids do not tell whether it saw the commit of xid "
                       f"{unknown[0].xid}")
    return format_lsn(between[first].lsn) if first < len(between) else None


def _replayed(snap: SnapshotXids, record: CommitRecord) -> bool | None:
    """Whether a standby's snapshot was taken after `record` was replayed: True, False, or
    None when its xmin and xmax do not tell. Only a commit proves itself seen: an ABORT may
    be a subtransaction's, whose xid an assignment record takes out of the running ones."""
    xid = snap.widen(record.xid)
    newest = max([xid, *(snap.widen(x) for x in record.subxacts)])
    if newest >= snap.xmax or xid == snap.xmin:   # xmin below xmax: an xid known running
        return False
    if not record.committed or record.prepared:
        return None
    return xid < snap.xmin or newest == snap.xmax - 1 or None


def record_boundary(lsn: str, segment: int, block: int) -> str:
    """A primary's insert position just past a page header (a segment's first page: its long
    header; any other page: its short one) as the page's start: where the last record ended,
    the same state, and a place the archive reaches once that segment is. An idle database's
    insert position after a WAL switch is the new segment's start plus its header, which no
    archive holds until the segment fills."""
    at = parse_lsn(lsn)
    in_segment, in_block = at % segment, at % block
    if in_segment == LONG_HEADER or (in_block == SHORT_HEADER and in_segment >= block):
        return format_lsn(at - in_block)
    return lsn


def _aligned(lsn: int) -> int:
    return (lsn + 7) & ~7


Pinner = Callable[[PinFacts], str]


def against(flush: Callable[[], object],
            commits_near: Callable[[str], list[CommitRecord] | None]) -> Pinner:
    """A pinner reading an archive: flushed first (so the WAL past the snapshot is in it),
    then its transaction records around the LSN. An archive that does not reach the LSN
    leaves the snapshot's LSN as it was read (the check needs the WAL: Unpinned would only
    repeat it), unless replay moved while it was taken (nothing else tells what it saw)."""
    def pinned(facts: PinFacts) -> str:
        flush()
        commits = commits_near(facts.lsn)
        if commits is None and facts.before is not None:
            raise Unpinned(f"replay moved from {facts.before} to {facts.lsn} as the snapshot "
                           f"was taken, and the archive does not reach {facts.lsn}")
        return facts.lsn if commits is None else pin(facts, commits)

    return pinned
