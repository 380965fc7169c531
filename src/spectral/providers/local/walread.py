"""Reading the WAL archive with pg_waldump as one stream.

Records cross segment boundaries (a large DELETE's record, a commit record), so the archive is
never read one segment at a time: a contiguous run of segments along the live timeline's
lineage is read by one pg_waldump call. The run's segments may come from several timelines and
two folders (archive, stream); they are linked into a temporary folder under one timeline's
names, which pg_waldump accepts because page timelines only ever increase along a lineage.

Where pg_waldump stops before the end of the WAL it was given, the WAL from there to the end
of that segment cannot be read: damage (a changed byte anywhere in a record, a bad page
header), a truncated file, a file the repository cannot hand over. That is a gap, named by its
segment, exactly like a missing segment, and reading goes on with the next segment. The one
normal early end is the tail of a segment still being written (a `.partial` file: the stream's
or a stopped server's current segment), where nothing valid follows the last record."""

from __future__ import annotations

import re
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from spectral.errors import CouldNotVerify
from spectral.pg.binaries import PgBinaries
from spectral.pg.waldump import LONG_HEADER, SHORT_HEADER
from spectral.providers.local import walheader
from spectral.providers.local.wal import (
    CommitRecord,
    Segment,
    format_lsn,
    parse_commit_line,
    parse_lsn,
    parse_segment,
    segment_name,
    segment_of,
)
from spectral.runner import Completed, run

RECORD_RE = re.compile(r"len \(rec/tot\):\s*\d+/\s*(?P<tot>\d+), tx:\s*(?P<xid>\d+), "
                       r"lsn: (?P<lsn>[0-9A-F]+/[0-9A-F]+)")
RESTORE_POINT_RE = re.compile(r"lsn: ([0-9A-F]+/[0-9A-F]+).*desc: RESTORE_POINT (.+)$")
ERROR_AT_RE = re.compile(r"error in WAL record at [0-9A-F]+/[0-9A-F]+: ")
READ_FAIL_RE = re.compile(r'could not read from (?:file|WAL segment) "?(?P<name>[0-9A-F]{24})"?'
                          r", offset (?P<offset>\d+)")
LSN_IN_TEXT_RE = re.compile(r"\b([0-9A-F]{1,8}/[0-9A-F]{1,8})\b")
PAGE = 8192


@dataclass(frozen=True)
class LastRecord:
    lsn: int
    end: int             # where the next record would start (the WAL's end after it)
    switch: bool


@dataclass(frozen=True)
class Unreadable:
    """WAL that cannot be read: every record before `lsn` is readable, nothing from there to
    the end of `segment` is."""

    segment: Segment
    lsn: int
    reason: str

    def describe(self) -> str:
        return (f"WAL segment {self.segment.name} is damaged: it cannot be read from LSN "
                f"{format_lsn(self.lsn)} on ({self.reason})")


@dataclass
class WalSummary:
    commits: list[CommitRecord] = field(default_factory=list)        # in WAL order
    restore_points: list[tuple[int, str]] = field(default_factory=list)
    last: LastRecord | None = None
    unreadable: list[Unreadable] = field(default_factory=list)


def record_end(lsn: int, total: int, seg_size: int) -> int:
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


def dump(bins: PgBinaries, where: dict[Segment, Path], segments: list[Segment], *,
         cap: int | None = None, unreadable: list[Unreadable] | None = None,
         rmgr: str | None = None) -> Iterator[str]:
    """pg_waldump's lines for the segments, each contiguous run read as one stream. WAL that
    cannot be read is added to `unreadable` and reading goes on after it; without that list
    it is an error (CouldNotVerify naming the segment). Past `cap` the WAL is not on the
    lineage, so a stop there is no damage. `rmgr` prints only that resource manager's records
    (pg_waldump --rmgr; every record is still decoded and checked): "Transaction" is an order
    of magnitude faster to read than everything."""
    found: list[Unreadable] = [] if unreadable is None else unreadable
    for part in runs(_readable_files(where, segments, found)):
        for line in _read_run(bins, where, part, cap, found, quiet=False, rmgr=rmgr):
            if unreadable is None and found:
                break
            yield line
        if unreadable is None and found:
            raise CouldNotVerify(found[0].describe(), hint="spectral dr backups names every "
                                 "gap in the WAL archive")


def check(bins: PgBinaries, where: dict[Segment, Path], segments: list[Segment], *,
          cap: int | None = None, sysid: int | None = None) -> list[Unreadable]:
    """Every stretch of the segments' WAL that cannot be read (pg_waldump --quiet: it decodes
    and checks every record, printing nothing), and every segment whose first page header is
    not this cluster's (`sysid`: what pg_waldump cannot check, walheader.py)."""
    found: list[Unreadable] = []
    readable = _readable_files(where, segments, found)
    for seg in list(readable):
        said = walheader.problem(walheader.read(_file(where, seg)), sysid, seg.size,
                                 partial=seg.partial)
        if said is not None:
            found.append(Unreadable(seg, seg.start_lsn(), said))
            readable.remove(seg)
    for part in runs(readable):
        for _ in _read_run(bins, where, part, cap, found, quiet=True):
            pass
    return sorted(found, key=lambda u: u.lsn)


def _file(where: dict[Segment, Path], seg: Segment) -> Path:
    return where[seg] / (seg.name + (".partial" if seg.partial else ""))


def _readable_files(where: dict[Segment, Path], segments: list[Segment],
                    found: list[Unreadable]) -> list[Segment]:
    """The segments whose file can be had and has a segment's size; the others are added to
    `found` (PostgreSQL refuses a restored file of the wrong size outright)."""
    prefetch = getattr(where, "prefetch", None)   # a repository that fetches WAL on read
    if prefetch is not None:
        prefetch(segments)
    out = []
    for seg in segments:
        try:
            size = _file(where, seg).stat().st_size
        except CouldNotVerify as exc:
            found.append(Unreadable(seg, seg.start_lsn(), exc.message))
            continue
        except OSError as exc:
            found.append(Unreadable(seg, seg.start_lsn(), f"cannot be read: {exc.strerror}"))
            continue
        if size != seg.size:
            found.append(Unreadable(seg, seg.start_lsn(), f"the file holds {size} bytes, not "
                                    f"{seg.size}: truncated"))
            _evict(where, seg)
            continue
        out.append(seg)
    return out


def _read_run(bins: PgBinaries, where: dict[Segment, Path], part: list[Segment],
              cap: int | None, found: list[Unreadable], *, quiet: bool,
              rmgr: str | None = None) -> Iterator[str]:
    """One contiguous run: pg_waldump from its first segment to its last; where it stops
    early on damage, the damaged segment is added to `found` and reading starts again with
    the segment after it."""
    tli = part[-1].timeline
    with tempfile.TemporaryDirectory(prefix="spectral-wal-") as tmp:
        for seg in part:
            (Path(tmp) / seg.at(tli, seg.segno).name).symlink_to(_file(where, seg))
        first = 0
        while first < len(part):
            sub = part[first:]
            # Its output (a line per record: hundreds of MB for a bulk load) goes to a file
            # that is read line by line, so memory stays flat whatever the WAL holds.
            out = Path(tmp) / "records.txt"
            res = _waldump(bins, tmp, tli, sub, out, quiet=quiet, rmgr=rmgr)
            if not quiet:
                with out.open(encoding="utf-8", errors="replace") as lines:
                    for line in lines:
                        yield line.rstrip("\n")
            if res.returncode == 0:
                return
            reason, stop = _stop(res.stderr, part[0].size)
            if stop is None:       # a message without a position: where its records end
                if quiet or rmgr:      # every record printed, so the last one is known
                    _waldump(bins, tmp, tli, sub, out, quiet=False)
                stop = _last_end(out, sub[0].start_lsn(), part[0].size)
            stop = max(stop, sub[0].start_lsn())
            if _normal_end(where, sub, stop, cap) or _growing(bins, tmp, tli, sub, stop):
                return
            bad = next(s for s in sub if s.segno == segment_of(stop, s.size))
            found.append(Unreadable(bad, stop, reason))
            _evict(where, bad)
            first = part.index(bad) + 1


def _evict(where: dict[Segment, Path], seg: Segment) -> None:
    """A repository's local copy of a file found unreadable is dropped: the next read fetches
    it again, so a repaired repository is seen as repaired."""
    evict = getattr(where, "evict", None)
    if evict is not None:
        evict(seg)


def _growing(bins: PgBinaries, tmp: str, tli: int, sub: list[Segment], stop: int) -> bool:
    """Whether a `.partial` file that looked damaged is being written as it is read (the
    stream's): read again, its WAL then ends later."""
    if not sub[-1].partial or segment_of(stop, sub[-1].size) != sub[-1].segno:
        return False
    res = _waldump(bins, tmp, tli, sub, Path(tmp) / "again.txt", quiet=True)
    again = _stop(res.stderr, sub[-1].size)[1]
    return res.returncode == 0 or (again is not None and again > stop)


def _waldump(bins: PgBinaries, tmp: str, tli: int, sub: list[Segment], out: Path, *,
             quiet: bool, rmgr: str | None = None) -> Completed:
    return run([bins.path("pg_waldump"), *(["--quiet"] if quiet else []),
                *(["--rmgr", rmgr] if rmgr else []), "--path", tmp,
                segment_name(tli, sub[0].segno, sub[0].size),
                segment_name(tli, sub[-1].segno, sub[0].size)],
               timeout=3600, check=False, env={"TZ": "UTC", "PGTZ": "UTC"}, stdout_path=out)


def _stop(stderr: str, seg_size: int) -> tuple[str, int | None]:
    """pg_waldump's reason for stopping, and where: the last position its message names
    ("invalid record length at 0/70000D0", "... in WAL segment X, LSN 0/4000000, offset 0",
    "could not read from file X, offset 100"), None when it names none."""
    line = next((ln for ln in stderr.splitlines() if "error:" in ln), stderr.strip())
    reason = line.split("error:", 1)[-1].strip()
    m = ERROR_AT_RE.match(reason)
    inner = reason[m.end():] if m else reason
    if (f := READ_FAIL_RE.search(inner)) and \
            (seg := parse_segment(f.group("name"), seg_size)):
        return inner, seg.start_lsn() + int(f.group("offset"))
    positions = LSN_IN_TEXT_RE.findall(inner)
    return inner, parse_lsn(positions[-1]) if positions else None


def _last_end(out: Path, default: int, seg_size: int) -> int:
    """Where the next record would start after the last record in pg_waldump's output."""
    with out.open("rb") as f:
        f.seek(max(0, out.stat().st_size - 65536))
        tail = f.read().decode(errors="replace").splitlines()
    for line in reversed(tail):
        if (rec := _record(line, seg_size)) is not None:
            return rec.end
    return default


def _normal_end(where: dict[Segment, Path], sub: list[Segment], stop: int,
                cap: int | None) -> bool:
    """Whether a stop at `stop` is the end of the WAL written, not damage: past the data given
    or past the lineage's end, or inside the last segment when it is one still being written
    (a `.partial` file) and no page after the stop holds WAL (zeros, or a recycled file's old
    pages, follow the last record). A complete segment ends in a SWITCH record or is full."""
    last = sub[-1]
    if stop >= last.end_lsn() or (cap is not None and stop >= cap):
        return True
    if segment_of(stop, last.size) < last.segno or not last.partial:
        return False
    return not written_after(_file(where, last), stop, last.size)


def written_after(path: Path, lsn: int, seg_size: int) -> bool:
    """Whether a page after the one holding `lsn` has a valid header for its place in the
    segment: WAL was written there, so an unreadable record before it is damage."""
    data = path.read_bytes()
    if len(data) < PAGE:
        return False
    magic = struct.unpack_from("<H", data, 0)[0]
    base = lsn - lsn % seg_size
    for page in range((lsn % seg_size) // PAGE + 1, len(data) // PAGE):
        got, _info, _tli, addr = struct.unpack_from("<HHIQ", data, page * PAGE)
        if got == magic and addr == base + page * PAGE:
            return True
    return False


def _record(line: str, seg_size: int) -> LastRecord | None:
    m = RECORD_RE.search(line)
    if m is None:
        return None
    lsn = parse_lsn(m.group("lsn"))
    switch = "rmgr: XLOG" in line and "desc: SWITCH" in line
    end = ((lsn // seg_size) + 1) * seg_size if switch else \
        record_end(lsn, int(m.group("tot")), seg_size)
    return LastRecord(lsn, end, switch)


def summarize(bins: PgBinaries, where: dict[Segment, Path], segments: list[Segment], *,
              limit: int | None = None) -> WalSummary:
    """Commits, aborts, restore points and the last record of the segments (records at or
    after `limit` are not on the lineage and are left out), and the WAL that cannot be read."""
    out = WalSummary()
    for line in dump(bins, where, segments, cap=limit, unreadable=out.unreadable):
        rec = _record(line, segments[0].size)
        if rec is None:
            continue
        if limit is not None and rec.lsn >= limit:
            break
        out.last = rec
        if "rmgr: Transaction" in line and (commit := parse_commit_line(line)) is not None:
            out.commits.append(commit)
        elif "RESTORE_POINT" in line and (p := RESTORE_POINT_RE.search(line)):
            out.restore_points.append((rec.lsn, p.group(2)))
    return out
