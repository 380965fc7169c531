"""Reading the WAL archive with pg_waldump as one stream.

Records cross segment boundaries (a large DELETE's record, a commit record), so the archive is
never read one segment at a time: a contiguous run of segments along the live timeline's
lineage is read by one pg_waldump call. The run's segments may come from several timelines and
two folders (archive, stream); they are linked into a temporary folder under one timeline's
names, which pg_waldump accepts because page timelines only ever increase along a lineage."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from spectral.pg.binaries import PgBinaries
from spectral.providers.local.wal import (
    DEFAULT_SEG_SIZE,
    CommitRecord,
    Segment,
    parse_commit_line,
    parse_lsn,
    segment_name,
)
from spectral.runner import run

RECORD_RE = re.compile(r"len \(rec/tot\):\s*\d+/\s*(?P<tot>\d+), tx:\s*(?P<xid>\d+), "
                       r"lsn: (?P<lsn>[0-9A-F]+/[0-9A-F]+)")
RESTORE_POINT_RE = re.compile(r"lsn: ([0-9A-F]+/[0-9A-F]+).*desc: RESTORE_POINT (.+)$")
PAGE = 8192
SHORT_HEADER, LONG_HEADER = 24, 40


@dataclass(frozen=True)
class LastRecord:
    lsn: int
    end: int             # where the next record would start (the WAL's end after it)
    switch: bool


@dataclass
class WalSummary:
    commits: list[CommitRecord] = field(default_factory=list)        # in WAL order
    restore_points: list[tuple[int, str]] = field(default_factory=list)
    last: LastRecord | None = None


def record_end(lsn: int, total: int, seg_size: int = DEFAULT_SEG_SIZE) -> int:
    """Where a record of `total` bytes starting at `lsn` ends, page headers included, rounded
    to the 8-byte alignment at which PostgreSQL writes the next record."""
    pos, left = lsn, total
    while left > 0:
        room = PAGE - pos % PAGE
        if left <= room:
            pos += left
            break
        left -= room
        pos += room
        pos += LONG_HEADER if pos % seg_size == 0 else SHORT_HEADER
    return (pos + 7) & ~7


def runs(segments: list[Segment]) -> list[list[Segment]]:
    """Split segments (one per number, ascending) into runs of consecutive numbers."""
    out: list[list[Segment]] = []
    for seg in segments:
        if out and out[-1][-1].segno + 1 == seg.segno:
            out[-1].append(seg)
        else:
            out.append([seg])
    return out


def dump(bins: PgBinaries, where: dict[Segment, Path], segments: list[Segment]) -> Iterator[str]:
    """pg_waldump's lines for the segments, each contiguous run read as one stream."""
    prefetch = getattr(where, "prefetch", None)   # a repository that fetches WAL on read
    if prefetch is not None:
        prefetch(segments)
    for part in runs(segments):
        tli = part[-1].timeline
        with tempfile.TemporaryDirectory(prefix="spectral-wal-") as tmp:
            for seg in part:
                name = seg.name + (".partial" if seg.partial else "")
                (Path(tmp) / segment_name(tli, seg.segno)).symlink_to(where[seg] / name)
            # pg_waldump exits non-zero at the end of valid WAL (a partial tail, or a segment
            # still being filled): the normal end; everything printed before it is valid.
            # Its output (a line per record: hundreds of MB for a bulk load) goes to a file
            # that is read line by line, so memory stays flat whatever the WAL holds.
            out = Path(tmp) / "records.txt"
            run([bins.path("pg_waldump"), "--path", tmp, segment_name(tli, part[0].segno),
                 segment_name(tli, part[-1].segno)], timeout=3600, check=False,
                env={"TZ": "UTC", "PGTZ": "UTC"}, stdout_path=out)
            with out.open(encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    yield line.rstrip("\n")


def summarize(bins: PgBinaries, where: dict[Segment, Path], segments: list[Segment], *,
              limit: int | None = None) -> WalSummary:
    """Commits, aborts, restore points and the last record of the segments (records at or
    after `limit` are not on the lineage and are left out)."""
    out = WalSummary()
    for line in dump(bins, where, segments):
        m = RECORD_RE.search(line)
        if m is None:
            continue
        lsn = parse_lsn(m.group("lsn"))
        if limit is not None and lsn >= limit:
            break
        switch = "rmgr: XLOG" in line and "desc: SWITCH" in line
        end = ((lsn // DEFAULT_SEG_SIZE) + 1) * DEFAULT_SEG_SIZE if switch else \
            record_end(lsn, int(m.group("tot")))
        out.last = LastRecord(lsn, end, switch)
        if "rmgr: Transaction" in line and (rec := parse_commit_line(line)) is not None:
            out.commits.append(rec)
        elif "RESTORE_POINT" in line and (p := RESTORE_POINT_RE.search(line)):
            out.restore_points.append((lsn, p.group(2).strip()))
    return out
