"""The recoverable window of a local repository: from the oldest verified base backup's
consistency point to the last record in the WAL archive (and pg_receivewal's live tail),
following the timeline history, stopping at the first gap."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from spectral.pg.binaries import PgBinaries
from spectral.providers.base import (
    Backup,
    BackupKind,
    RecoverableWindow,
    Verification,
    WalGap,
    WindowInterval,
)
from spectral.providers.local import walcheck, walcommits, walread
from spectral.providers.local.newtimeline import other_history
from spectral.providers.local.repo import Repository
from spectral.providers.local.wal import (
    Segment,
    descends,
    format_lsn,
    parse_lsn,
    read_history,
    segment_name,
    segment_of,
)
from spectral.recovery_target import RecoveryTarget, TargetKind

COMMITS_FILE = "wal-commits.json"     # what each archived segment holds (walcommits.py)


@dataclass(frozen=True)
class ArchiveView:
    segments: list[Segment]
    where: dict[Segment, Path]
    timeline: int
    seg_size: int          # the lineage's WAL segment size (walsize.py)

    def name(self, timeline: int, segno: int) -> str:
        return segment_name(timeline, segno, self.seg_size)

    def segno(self, lsn: int) -> int:
        return segment_of(lsn, self.seg_size)


def archive_view(repo: Repository) -> ArchiveView:
    where = repo.wal_files()
    segments = sorted(where)
    # the size the names were read with (asked again only when there is no WAL file)
    seg_size = segments[0].size if segments else repo.segment_size()
    timeline = max([s.timeline for s in segments] + repo.history_timelines() + [1])
    return ArchiveView(segments, where, timeline, seg_size)


@dataclass(frozen=True)
class Lineage:
    """The WAL a restore following the newest timeline replays, one file per segment number:
    `segments` ascending, `missing` the numbers between them that no usable file covers, and
    `end_cap` the LSN past which the newest file is not on the lineage (it belongs to a timeline
    the lineage left inside that segment), or None."""

    view: ArchiveView
    segments: list[Segment]
    missing: list[int]
    end_cap: int | None
    # the newest timeline's history file is missing: the segment number where that timeline's
    # own WAL begins (recovery from an older backup cannot follow the switch without it)
    unfollowable: int | None = None


def ancestry(repo: Repository, timeline: int) -> list[tuple[int, int, int | None]]:
    """(timeline, begin LSN, end LSN or None for the open one) along `timeline`'s history."""
    out: list[tuple[int, int, int | None]] = []
    begin = 0
    for switch in read_history(repo.archive, timeline):
        if switch.switch_lsn > begin:      # a timeline the lineage left at once holds nothing
            out.append((switch.timeline, begin, switch.switch_lsn))
        begin = switch.switch_lsn
    out.append((timeline, begin, None))
    return out


def lineage_of(repo: Repository) -> Lineage:
    """For each segment number, the file of the last timeline of the lineage active in it (it
    holds the whole segment's lineage WAL: a new timeline's first segment starts as a copy of
    its parent's); failing that, for the newest segment only, an earlier timeline's file, read
    up to where the lineage left it. Segments of abandoned timelines (an undone restore's, the
    history an in-place restore rewound) are never used, so their transactions are never
    reported as if they had happened."""
    view = archive_view(repo)
    if view.timeline != 1 and not read_history(repo.archive, view.timeline):
        return _without_history(view)
    spans = ancestry(repo, view.timeline)
    files: dict[tuple[int, int], Segment] = {}
    for seg in view.segments:   # a complete file wins over a .partial of the same segment
        key = (seg.timeline, seg.segno)
        if key not in files or files[key].partial:
            files[key] = seg
    chosen: list[Segment] = []
    caps: dict[int, int] = {}
    for segno in sorted({seg.segno for seg in view.segments}):
        lo, hi = segno * view.seg_size, (segno + 1) * view.seg_size
        active = [(t, e) for t, b, e in spans if b < hi and (e is None or e > lo)]
        if not active:
            continue
        last_t = active[-1][0]
        if (last_t, segno) in files:
            chosen.append(files[(last_t, segno)])
            continue
        earlier = [(t, e) for t, e in active[:-1] if (t, segno) in files]
        if earlier:
            t, e = earlier[-1]
            chosen.append(files[(t, segno)])
            assert e is not None
            caps[segno] = e
    # a capped file is whole only as the newest one; before that it is a hole in the lineage
    while chosen and any(c.segno in caps for c in chosen[:-1]):
        chosen = [c for c in chosen[:-1] if c.segno not in caps] + chosen[-1:]
    numbers = {c.segno for c in chosen}
    missing = [n for n in range(min(numbers), max(numbers))
               if n not in numbers] if numbers else []
    return Lineage(view, chosen, missing, caps.get(chosen[-1].segno) if chosen else None)


def _without_history(view: ArchiveView) -> Lineage:
    """The newest timeline's history file is missing, so where it branched is unknown: its own
    segments from its first one on, and before that, every segment as PostgreSQL would find
    them (a lower timeline's, never read on into the newest one's)."""
    own = [s for s in view.segments if s.timeline == view.timeline]
    first = min(s.segno for s in own) if own else None
    before = [s for s in view.segments if s.timeline < view.timeline
              and (first is None or s.segno < first)]
    chosen = _one_per_number(before) + _one_per_number(own)
    numbers = {c.segno for c in chosen}
    missing = [n for n in range(min(numbers), max(numbers))
               if n not in numbers] if numbers else []
    return Lineage(view, chosen, missing, None, first)


SWITCH_RE = re.compile(r"lsn: ([0-9A-F]+/[0-9A-F]+),.*desc: \w+ .*\btli (\d+); prev tli (\d+)")


def _switch(bins: PgBinaries, lin: Lineage) -> int:
    """Where the newest timeline branched, without its history file: the first record of its
    first segment that says so (the end of recovery, or the checkpoint, naming "tli N; prev
    tli M"); before it, that segment holds the WAL it shares with its parent. The segment's
    start when no such record can be read."""
    assert lin.unfollowable is not None
    start = lin.unfollowable * lin.view.seg_size
    first = [s for s in lin.segments if s.segno == lin.unfollowable]
    found: list[walread.Unreadable] = []
    for line in walread.dump(bins, lin.view.where, first, unreadable=found, rmgr="XLOG"):
        m = SWITCH_RE.search(line)
        if m and int(m.group(2)) == lin.view.timeline != int(m.group(3)):
            return max(parse_lsn(m.group(1)), start)
    return start


def history_name(timeline: int) -> str:
    return f"{timeline:08X}.history"


def _one_per_number(segments: list[Segment]) -> list[Segment]:
    best: dict[int, Segment] = {}
    for seg in segments:
        cur = best.get(seg.segno)
        if cur is None or (cur.partial, -cur.timeline) > (seg.partial, -seg.timeline):
            best[seg.segno] = seg
    return [best[n] for n in sorted(best)]


def lineage_segments(repo: Repository) -> tuple[ArchiveView, list[Segment]]:
    lin = lineage_of(repo)
    return lin.view, lin.segments


def lineage(repo: Repository, timeline: int | None = None) -> set[str]:
    """Ids of the backups on the ancestry of `timeline` (default: the newest timeline in the
    archive, the one a restore follows); all of them when its history file is missing."""
    timeline = archive_view(repo).timeline if timeline is None else timeline
    history = read_history(repo.archive, timeline)
    if timeline != 1 and not history:            # cannot tell
        return {b.id for b in repo.read()}
    return {b.id for b in repo.read()
            if descends(b.timeline, parse_lsn(b.stop_lsn), timeline, history)
            and not other_history(repo, b)}


def usable_backups(repo: Repository, timeline: int | None = None) -> list[Backup]:
    """Backups a restore may start from: a verified full backup, or an incremental whose chain
    starts at one; on the lineage of `timeline` (see `lineage`)."""
    on_lineage = lineage(repo, timeline)
    out = []
    by_id = {b.id: b for b in repo.read()}
    for b in by_id.values():
        chain_ok = True
        cur: Backup | None = b
        while cur is not None:
            if cur.verification is Verification.FAILED:
                chain_ok = False
                break
            if cur.kind is BackupKind.FULL:
                chain_ok = chain_ok and (cur.verification is Verification.VERIFIED
                                         or repo.checked_before_restore)
                break
            cur = by_id.get(cur.parent or "")
            if cur is None:
                chain_ok = False
        if chain_ok and b.id in on_lineage:
            out.append(b)
    return sorted(out, key=lambda b: parse_lsn(b.stop_lsn))


@dataclass(frozen=True)
class Break:
    """Where the lineage's WAL stops being readable: a missing segment (from its start) or
    WAL that cannot be read (from `lsn` to the end of its segment)."""

    lsn: int
    segno: int
    missing: bool
    problem: str = "is missing from the archive"
    name: str = ""          # the file that cannot be read (or the missing history file)
    timeline: int | None = None   # a missing history: backups on this timeline do not need it
    seg_size: int = field(kw_only=True)     # the lineage's segment size

    def ends(self, backup: Backup) -> bool:
        """Whether recovery from `backup` runs into this break (a missing segment at or after
        the backup's own, unreadable WAL after its consistency point, a missing history file
        of a later timeline than the backup's)."""
        if self.timeline is not None and backup.timeline >= self.timeline:
            return False
        stop = parse_lsn(backup.stop_lsn)
        # damage runs from `lsn` to its segment's end: it ends a backup whose end lies before
        # that (the WAL after the end, in that segment, is what cannot be read)
        return self.segno >= segment_of(stop, self.seg_size) if self.missing else \
            (self.segno + 1) * self.seg_size > stop


def breaks(bins: PgBinaries, lin: Lineage, first: int, cache: Path) -> list[Break]:
    """Every break in the lineage from segment `first` on: the missing segments, and the
    segments pg_waldump cannot read to their end (damage anywhere in a record, a truncated
    file, a file the repository cannot hand over)."""
    size = lin.view.seg_size
    out = [Break(n * size, n, True, seg_size=size) for n in lin.missing if n >= first]
    if lin.unfollowable is not None:
        tli = lin.view.timeline
        out.append(Break(_switch(bins, lin), lin.unfollowable, False,
                         f"is missing from the archive: recovery cannot follow the switch to "
                         f"timeline {tli} without it", history_name(tli), tli,
                         seg_size=size))
    checked = [s for s in lin.segments if s.segno >= first]
    for bad in walcheck.unreadable(bins, lin.view.where, checked, cap=lin.end_cap, cache=cache):
        out.append(Break(bad.lsn, bad.segment.segno, False,
                         f"is damaged: it cannot be read from LSN {format_lsn(bad.lsn)} on "
                         f"({bad.reason})", bad.segment.name, seg_size=size))
    return sorted(out, key=lambda b: b.lsn)


def compute(bins: PgBinaries, repo: Repository, *, times: bool = True) -> RecoverableWindow:
    """The recoverable window as a set of intervals, one per stretch of readable WAL: each
    starts at the consistency point of the oldest usable backup whose WAL it reaches, and ends
    at the last record before the next break (a missing segment, WAL that cannot be read) or
    the end of the archive. A target inside any interval is reachable; the breaks are named.
    Without `times` the last commit's time is not searched for (each interval's end time is
    its start's): for a plan that reads none (`needs_times`)."""
    from spectral.providers.local.consistency import consistent_times

    backups = usable_backups(repo)
    if not backups:
        return RecoverableWindow(None, None, None, None, None)
    lin = lineage_of(repo)
    starts = consistent_times(bins, repo, backups)
    found = breaks(bins, lin, lin.view.segno(parse_lsn(backups[0].stop_lsn)),
                   repo.root / "wal-checked.json")
    by_end: dict[int, tuple[Break | None, list[Backup]]] = {}
    for b in backups:
        brk = next((x for x in found if x.ends(b)), None)
        key = brk.lsn if brk is not None else 1 << 64
        by_end.setdefault(key, (brk, []))[1].append(b)
    commits = repo.root / COMMITS_FILE if times else None
    intervals = [_interval(bins, lin, brk, group, starts, commits)
                 for _, (brk, group) in sorted(by_end.items())]
    first_iv, last_iv = intervals[0], intervals[-1]
    return RecoverableWindow(first_iv.start_time, first_iv.start_lsn, last_iv.end_time,
                             last_iv.end_lsn, lin.view.timeline, _gaps(lin, found), intervals,
                             last_iv.wal_end)


def needs_times(target: RecoveryTarget | None) -> bool:
    """Whether planning a restore to `target` reads the window's times: not for an LSN or the
    latest point (their plan is in LSNs; a refusal is said with the times, read then)."""
    return target is None or target.kind not in (TargetKind.LSN, TargetKind.LATEST)


def _interval(bins: PgBinaries, lin: Lineage, brk: Break | None, group: list[Backup],
              starts: dict[str, datetime], commits: Path | None) -> WindowInterval:
    """From the group's oldest backup (its consistency point, `starts`) to the last record and
    last commit before the break (or the end of the archive), reading back until a commit is
    found."""
    first = min(group, key=lambda b: parse_lsn(b.stop_lsn))
    begins = starts.get(first.id, first.stop_time)
    stop = parse_lsn(first.stop_lsn)
    newest = lin.segments[-1].segno if lin.segments else -1
    if brk is None:
        end_segno, cap = newest, lin.end_cap
    elif brk.missing:
        end_segno, cap = brk.segno - 1, None
    else:
        end_segno = brk.segno
        cap = brk.lsn if lin.end_cap is None or brk.segno != newest else \
            min(brk.lsn, lin.end_cap)
    readable = [s for s in lin.segments if lin.view.segno(stop) <= s.segno <= end_segno]
    last, commit = _tail(bins, lin, readable, stop, cap, commits)
    end_lsn = last.lsn if last else stop
    wal_end = last.end if last else stop
    if cap is not None:      # never before the backup's end (its own WAL reaches that)
        wal_end = max(min(wal_end, cap), stop)
    end_time = max(commit or begins, begins)
    return WindowInterval(begins, first.stop_lsn, end_time, format_lsn(end_lsn),
                          format_lsn(wal_end), [b.id for b in group])


def _tail(bins: PgBinaries, lin: Lineage, readable: list[Segment], stop: int,
          cap: int | None, commits: Path | None
          ) -> tuple[walread.LastRecord | None, datetime | None]:
    """The last record, and the time of the last commit after `stop` (the backup's
    consistency point), reading back from the newest segment until a commit is found: an idle
    stretch (backups, segment switches) can be long, and what each archived segment holds is
    remembered (walcommits.py, in `commits`; None: no commit time is read), so a walk reads it
    once."""
    if not readable:
        return None, None
    last = _last_record(bins, lin, readable, cap)
    if commits is None:
        return last, None
    end = readable[-1].end_lsn()
    walk = walcommits.Walk(bins, lin.view.where, lin.segments, cap, commits)
    found = walcommits.newest_commit(walk, low=stop, high=end)
    return last, found[1] if found else None


def _last_record(bins: PgBinaries, lin: Lineage, readable: list[Segment],
                 cap: int | None) -> walread.LastRecord | None:
    """The last record of the readable segments, reading back from the newest two in growing
    chunks (a segment holds no record of its own only inside a record larger than it)."""
    chunk, hi = 2, len(readable)
    while hi > 0:
        lo = max(0, hi - chunk)
        # one segment more at the end, so a record crossing into it is read whole
        part = readable[lo:min(hi + 1, len(readable))]
        last = walread.summarize(bins, lin.view.where, part, limit=cap).last
        if last is not None:
            return last
        hi, chunk = lo, chunk * 4
    return None


def _gaps(lin: Lineage, found: list[Break]) -> list[WalGap]:
    """The breaks after the oldest usable backup: each run of missing segments as one gap,
    each segment that cannot be read as one, in WAL order."""
    tli, name = lin.view.timeline, lin.view.name
    out: list[tuple[int, WalGap]] = []
    for part in _number_runs([b.segno for b in found if b.missing and not b.name]):
        out.append((part[0], WalGap(name(tli, part[0] - 1), name(tli, part[0]),
                                    name(tli, part[-1]), tli)))
    for b in found:
        if b.name:      # a file named by itself: unreadable WAL, a missing history file
            out.append((b.segno, WalGap(name(tli, b.segno - 1), b.name, b.name, tli,
                                        b.problem, None if b.missing else format_lsn(b.lsn))))
    return [g for _, g in sorted(out, key=lambda x: x[0])]


def _number_runs(numbers: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for n in numbers:
        if out and out[-1][-1] + 1 == n:
            out[-1].append(n)
        else:
            out.append([n])
    return out
