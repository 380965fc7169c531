"""WAL a stopped source wrote that the archive does not hold. The environment's server is the
tool's own, so when it is down (stopped, or killed: a crash leaves its last commits only in
pg_wal), its pg_wal is read: segments past the archive's newest that hold WAL are the source's
unarchived tail. A restore either gets them archived first (the server is started, recovers
from its crash and archives them, as PostgreSQL would) or names them as a gap at the end of the
recoverable window, so a target past the archive is refused, never restored short."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from spectral.errors import ClusterError, SpectralError
from spectral.pg.binaries import PgBinaries
from spectral.providers.base import RecoverableWindow, Report, WalGap
from spectral.providers.local import walread, walsize
from spectral.providers.local.repo import Repository
from spectral.providers.local.wal import (
    Segment,
    format_lsn,
    list_segments,
    parse_lsn,
    read_history,
    segment_of,
)
from spectral.providers.local.window import lineage_of, usable_backups
from spectral.waits import WaitTimeout, wait_until

if TYPE_CHECKING:
    from spectral.providers.local.archive import LocalWalArchive
    from spectral.providers.local.environment import LocalEnvironment

# A clean shutdown writes this into the segment being filled; it changes no data, so a
# segment holding only it is no tail worth a restart of the server
NOTHING_RESTORED = ("desc: CHECKPOINT_SHUTDOWN",)
LSN_RE = re.compile(r"lsn: ([0-9A-F]+/[0-9A-F]+)")
MAX_TAIL = 256   # segments read past the archive at most (max_wal_size is 2 GB: 128)


def unarchived(bins: PgBinaries, data_dir: Path, repo: Repository) -> list[Segment]:
    """The segments of a stopped server's pg_wal that hold WAL past the archive's end (its
    lineage's newest segment, or the end of the stream's .partial copy of one), in order;
    empty when there are none, or when they hold only the checkpoint of a clean shutdown.
    Files past the end of its WAL (recycled or preallocated) hold none."""
    pg_wal = data_dir / "pg_wal"
    if not pg_wal.is_dir():
        return []
    size = _segment_size(bins, data_dir, repo)
    start = _archive_end(bins, repo, size)
    if start is None:
        return []
    first, floor, timeline, held_to = start
    fork = _fork_point(pg_wal, timeline, size)
    if fork is not None and fork < max(floor, first * size):
        first, floor = segment_of(fork, size), fork
    files: dict[int, Segment] = {}
    for seg in list_segments(pg_wal, seg_size=size):
        if not seg.partial and seg.segno >= first and (
                seg.segno not in files or files[seg.segno].timeline < seg.timeline):
            files[seg.segno] = seg
    held: list[Segment] = []
    meaningful = False
    for segno in range(first, first + MAX_TAIL):
        found = files.get(segno)
        if found is None:
            break
        lines, ended = _records(bins, pg_wal, found, floor)
        if lines:
            held.append(found)
        meaningful = meaningful or any(not any(q in ln for q in NOTHING_RESTORED)
                                       for ln in lines)
        if ended or (not lines and segno > held_to):
            break
    return held if meaningful else []


def _segment_size(bins: PgBinaries, data_dir: Path, repo: Repository) -> int:
    """The server's own (its pg_control: its pg_wal's names), else its archive's: the same
    lineage (a data directory whose pg_control cannot be read still has its WAL)."""
    try:
        return walsize.from_control(bins, data_dir)
    except SpectralError:
        return repo.segment_size()


def _archive_end(bins: PgBinaries, repo: Repository,
                 seg_size: int) -> tuple[int, int, int, int] | None:
    """Where the WAL a restore can use ends: the segment number the tail is looked for from,
    the LSN its records count from, the timeline there, and the last segment number held. That
    is past the archive's newest segment (or the end of the stream's .partial copy of one);
    with nothing archived at all (archiving never worked), the newest backup's end, its own
    WAL being all there is."""
    lin = lineage_of(repo)
    if not lin.segments:
        backups = usable_backups(repo)
        if not backups:
            return None
        last = max(backups, key=lambda b: parse_lsn(b.stop_lsn))
        stop = parse_lsn(last.stop_lsn)
        return segment_of(stop, seg_size), stop, last.timeline, segment_of(stop, seg_size)
    newest = lin.segments[-1]
    if newest.partial:     # the stream's copy of the segment being written: what is past it
        last_rec = walread.summarize(bins, lin.view.where, [newest]).last
        return (newest.segno, last_rec.end if last_rec else newest.start_lsn(),
                newest.timeline, newest.segno)
    return newest.segno + 1, 0, newest.timeline, newest.segno


def _fork_point(pg_wal: Path, archived: int, seg_size: int) -> int | None:
    """Where the stopped server's timeline left the archive's newest one, when the server is on
    a newer timeline the archive holds no segment of (a crash soon after an in-place restore):
    its WAL from there on, the new timeline's first segment included (it has the number of the
    old timeline's last), is in pg_wal only. The server's timeline is the newest of its pg_wal
    (a promotion names every new and recycled segment after it)."""
    timeline = max((s.timeline for s in list_segments(pg_wal, seg_size=seg_size)),
                   default=archived)
    if timeline <= archived:
        return None
    ends = {switch.timeline: switch.switch_lsn for switch in read_history(pg_wal, timeline)}
    return ends.get(archived)


def _records(bins: PgBinaries, pg_wal: Path, seg: Segment, floor: int) -> tuple[list[str], bool]:
    """The record lines of one pg_wal segment at or after `floor`, and whether its WAL ends
    inside it."""
    stops: list[walread.Unreadable] = []
    lines = [ln for ln in walread.dump(bins, {seg: pg_wal}, [seg], unreadable=stops)
             if (m := LSN_RE.search(ln)) and parse_lsn(m.group(1)) >= floor]
    return lines, bool(stops)


def with_tail_gap(window: RecoverableWindow, tail: list[Segment]) -> RecoverableWindow:
    """The window with the stopped server's unarchived tail named as a gap after its end."""
    if not tail or window.empty:
        return window
    first, last = tail[0], tail[-1]
    gap = WalGap(first.at(first.timeline, first.segno - 1).name, first.name, last.name,
                 first.timeline, "is only in the stopped server's pg_wal, not in the archive "
                 "(start it to archive it: spectral local up)",
                 format_lsn(max(first.start_lsn(), parse_lsn(window.wal_end or "0/0"))))
    return RecoverableWindow(window.earliest_time, window.earliest_lsn, window.latest_time,
                             window.latest_lsn, window.timeline, [*window.gaps, gap],
                             window.intervals, window.wal_end)



def archive_source_tail(local: LocalEnvironment, archive: LocalWalArchive, tail: list[Segment],
                        report: Report | None) -> str | None:
    """Start the stopped server for as long as a flush of its archive takes: it recovers from
    its crash and archives the tail, as PostgreSQL would. If it cannot start, the window names
    the tail as a gap (`with_tail_gap`), so no target past the archive is restored short."""
    if report:
        report(f"the environment's server is stopped with WAL not archived ({tail[0].name}.."
               f"{tail[-1].name}); starting it to archive it")
    why: list[str] = []

    def attempt() -> str | None:
        try:
            with local.session():
                return archive.flush()
        except ClusterError as exc:
            # a killed server's processes have not all exited yet: it refuses to start
            if "in use by another server" in exc.message:
                why.append(exc.message)
                return None
            raise

    try:
        return wait_until(attempt, timeout=60, interval=0.2,
                          what="a start of the environment's server")
    except (SpectralError, WaitTimeout) as exc:
        if report:
            report(f"it could not be archived ({why[-1] if why else exc}): the recoverable "
                   f"window ends before it")
        return None
