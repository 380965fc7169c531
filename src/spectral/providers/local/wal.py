"""WAL arithmetic and the archive: segment names, LSNs, gaps, timelines, and commit records
read with pg_waldump."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from spectral.pg.waldump import CommitRecord as CommitRecord
from spectral.pg.waldump import format_lsn as format_lsn
from spectral.pg.waldump import parse_commit_line as parse_commit_line
from spectral.pg.waldump import parse_lsn as parse_lsn
from spectral.pg.waldump import parse_pg_time as parse_pg_time

SEGMENT_RE = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial)?$")
HISTORY_RE = re.compile(r"([0-9A-F]{8})\.history")
# initdb's default (--wal-segsize=16), only for a caller that has no WAL at all to read it
# from (no name to misread then). A lineage's size is discovered: walsize.py.
DEFAULT_SEG_SIZE = 16 * 1024 * 1024
MIN_SEG_SIZE, MAX_SEG_SIZE = 1 << 20, 1 << 30      # initdb --wal-segsize: 1 MB to 1 GB


def valid_seg_size(size: int) -> bool:
    """A size initdb accepts: a power of two from 1 MB to 1 GB."""
    return MIN_SEG_SIZE <= size <= MAX_SEG_SIZE and size & (size - 1) == 0


def segments_per_id(seg_size: int) -> int:
    """Segments per log id (the name's middle part): 4 GiB of WAL, so 256 at 16 MB, 64 at
    64 MB, 4096 at 1 MB. A name read with the wrong size has the wrong number and LSN."""
    return 0x100000000 // seg_size


def segment_name(timeline: int, segno: int, seg_size: int) -> str:
    per = segments_per_id(seg_size)
    return f"{timeline:08X}{segno // per:08X}{segno % per:08X}"


def segment_of(lsn: int, seg_size: int) -> int:
    return lsn // seg_size


@dataclass(frozen=True, order=True)
class Segment:
    """A WAL file of a lineage: its number counts segments of `size` bytes from LSN 0."""

    timeline: int
    segno: int
    partial: bool = False
    size: int = field(kw_only=True)

    @property
    def name(self) -> str:
        return segment_name(self.timeline, self.segno, self.size)

    def start_lsn(self) -> int:
        return self.segno * self.size

    def end_lsn(self) -> int:
        return (self.segno + 1) * self.size

    def at(self, timeline: int, segno: int) -> Segment:
        """Another segment of the same lineage (the same size)."""
        return Segment(timeline, segno, size=self.size)


def parse_segment(name: str, seg_size: int) -> Segment | None:
    m = SEGMENT_RE.match(name)
    if not m:
        return None
    tli, log, seg = (int(g, 16) for g in m.groups()[:3])
    if seg >= segments_per_id(seg_size):    # no such segment at this size
        return None
    return Segment(tli, log * segments_per_id(seg_size) + seg, bool(m.group(4)), size=seg_size)


def is_segment_name(name: str) -> bool:
    """Whether `name` is a WAL file's name (a segment or its .partial), whatever the size."""
    return SEGMENT_RE.match(name) is not None


def history_timeline(name: str) -> int | None:
    """The timeline a history file's name (`0000000A.history`) is of; None for any other name
    (a team's archive folder may hold files of its own that merely end in .history)."""
    m = HISTORY_RE.fullmatch(name)
    return int(m.group(1), 16) if m else None


def list_segments(*dirs: Path, seg_size: int) -> list[Segment]:
    found: set[Segment] = set()
    for d in dirs:
        if d.is_dir():
            for p in d.iterdir():
                seg = parse_segment(p.name, seg_size)
                if seg is not None:
                    found.add(seg)
    return sorted(found)


@dataclass(frozen=True)
class TimelineSwitch:
    timeline: int          # the timeline that was left
    switch_lsn: int        # where the next timeline branched off


def read_history(archive: Path, timeline: int) -> list[TimelineSwitch]:
    """Parse <timeline>.history: the ancestry of a timeline (empty for timeline 1)."""
    path = archive / f"{timeline:08X}.history"
    if timeline == 1 or not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            out.append(TimelineSwitch(int(parts[0]), parse_lsn(parts[1])))
    return effective(out)


def effective(history: list[TimelineSwitch]) -> list[TimelineSwitch]:
    """Where each timeline of the ancestry really ends. A restore to a point before its
    parent's own branch point (an in-place restore to a commit older than the last undo)
    writes a history whose later switch point is lower than an earlier one; PostgreSQL then
    reads every LSN at or after that point from the newer timeline (tliOfPointInHistory). So a
    timeline ends at the lowest switch point from its own on; one that ends where its
    predecessor ended holds nothing of the lineage."""
    out: list[TimelineSwitch] = []
    lowest: int | None = None
    for switch in reversed(history):
        lowest = switch.switch_lsn if lowest is None else min(lowest, switch.switch_lsn)
        out.append(TimelineSwitch(switch.timeline, lowest))
    return list(reversed(out))


def expected_timeline(lsn: int, timeline: int, history: list[TimelineSwitch]) -> int:
    """Which timeline holds the WAL at `lsn` when following `timeline`'s ancestry."""
    for switch in history:
        if lsn < switch.switch_lsn:
            return switch.timeline
    return timeline


def descends(backup_timeline: int, stop_lsn: int, timeline: int,
             history: list[TimelineSwitch]) -> bool:
    """Whether a backup taken on `backup_timeline`, consistent at `stop_lsn`, lies on the
    ancestry of `timeline`: a backup of a timeline that an undone restore abandoned does not,
    and recovering from it towards `timeline` fails or follows the wrong history."""
    return expected_timeline(max(stop_lsn - 1, 0), timeline, history) == backup_timeline


def first_gap(segments: list[Segment], start: int, timeline: int,
              history: list[TimelineSwitch], seg_size: int) -> int | None:
    """The first segment number at or after `start` that the chain of `timeline` needs but the
    archive lacks; None when the chain is complete up to the newest segment."""
    have = {(s.timeline, s.segno) for s in segments if not s.partial}
    have_partial = {(s.timeline, s.segno) for s in segments if s.partial}
    newest = max((s.segno for s in segments), default=start)
    segno = start
    while segno <= newest:
        tli = expected_timeline(segno * seg_size, timeline, history)
        # a segment where the timeline switched exists on both timelines; either will do
        if (tli, segno) not in have and (timeline, segno) not in have:
            if (tli, segno) in have_partial or (timeline, segno) in have_partial:
                return None if segno == newest else segno
            return segno
        segno += 1
    return None
