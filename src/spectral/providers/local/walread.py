"""Reading the WAL archive with pg_waldump: commit records, restore points, the last record."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from spectral.pg.binaries import PgBinaries
from spectral.providers.local.wal import CommitRecord, Segment, parse_commit_line, parse_lsn
from spectral.runner import run

RECORD_LSN_RE = re.compile(r"lsn: ([0-9A-F]+/[0-9A-F]+)")
RESTORE_POINT_RE = re.compile(r"lsn: ([0-9A-F]+/[0-9A-F]+).*desc: RESTORE_POINT (.+)$")


@dataclass(frozen=True)
class SegmentSummary:
    segment: Segment
    last_lsn: int | None
    commits: list[CommitRecord]
    restore_points: list[tuple[int, str]]


def waldump_argv(bins: PgBinaries, directory: Path, segment_file: str) -> list[str]:
    return [bins.path("pg_waldump"), "--path", str(directory), segment_file, segment_file]


def summarize(bins: PgBinaries, directory: Path, seg: Segment) -> SegmentSummary:
    """Every record of one segment (a .partial one is read through a temporary copy)."""
    name = seg.name + (".partial" if seg.partial else "")
    with tempfile.TemporaryDirectory(prefix="spectral-wal-") as tmp:
        where = directory
        if seg.partial:
            shutil.copyfile(directory / name, Path(tmp) / seg.name)
            where = Path(tmp)
        # pg_waldump exits non-zero at the end of valid WAL in a partial segment: that is the
        # normal end, and everything it printed before is valid
        res = run(waldump_argv(bins, where, seg.name), timeout=600, check=False,
                  env={"TZ": "UTC", "PGTZ": "UTC"})
    last = None
    commits = []
    points = []
    for line in res.stdout.splitlines():
        if m := RECORD_LSN_RE.search(line):
            last = parse_lsn(m.group(1))
        if "rmgr: Transaction" in line and (rec := parse_commit_line(line)) is not None:
            commits.append(rec)
        elif "RESTORE_POINT" in line and (p := RESTORE_POINT_RE.search(line)):
            points.append((parse_lsn(p.group(1)), p.group(2).strip()))
    return SegmentSummary(seg, last, commits, points)


def scan(bins: PgBinaries, dirs: dict[Segment, Path],
         segments: list[Segment]) -> Iterator[SegmentSummary]:
    for seg in segments:
        yield summarize(bins, dirs[seg], seg)
