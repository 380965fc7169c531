"""The recoverable window of a local repository: from the oldest verified base backup's
consistency point to the last record in the WAL archive (and pg_receivewal's live tail),
following the timeline history, stopping at the first gap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from spectral.pg.binaries import PgBinaries
from spectral.providers.base import Backup, BackupKind, RecoverableWindow, Verification, WalGap
from spectral.providers.local import walread
from spectral.providers.local.repo import Repository
from spectral.providers.local.wal import (
    Segment,
    descends,
    expected_timeline,
    first_gap,
    format_lsn,
    list_segments,
    parse_lsn,
    read_history,
    segment_name,
    segment_of,
)


@dataclass(frozen=True)
class ArchiveView:
    segments: list[Segment]
    where: dict[Segment, Path]
    timeline: int


def archive_view(repo: Repository) -> ArchiveView:
    where: dict[Segment, Path] = {}
    for d in (repo.stream, repo.archive):          # the archive wins when both have a segment
        for seg in list_segments(d):
            where[seg] = d
    segments = sorted(where)
    histories = [int(p.name[:8], 16) for p in repo.archive.glob("*.history")] if \
        repo.archive.is_dir() else []
    timeline = max([s.timeline for s in segments] + histories + [1])
    return ArchiveView(segments, where, timeline)


def lineage_segments(repo: Repository) -> tuple[ArchiveView, list[Segment]]:
    """One segment per segment number, from the timeline on which the newest timeline's
    ancestry holds it: the WAL a restore to the latest point replays. Segments of abandoned
    timelines (the history an in-place restore rewound, an undone restore's) are left out, so
    their transactions are not reported as if they had happened."""
    view = archive_view(repo)
    history = read_history(repo.archive, view.timeline)
    if view.timeline != 1 and not history:      # cannot tell: everything, as before
        return view, view.segments
    by_no: dict[int, list[Segment]] = {}
    for seg in view.segments:
        by_no.setdefault(seg.segno, []).append(seg)
    out = []
    for segs in (by_no[n] for n in sorted(by_no)):
        want = expected_timeline(segs[0].end_lsn() - 1, view.timeline, history)
        pick = sorted((x for x in segs if x.timeline == want), key=lambda x: x.partial)
        if pick:
            out.append(pick[0])
    return view, out


def lineage(repo: Repository, timeline: int | None = None) -> set[str]:
    """Ids of the backups on the ancestry of `timeline` (default: the newest timeline in the
    archive, the one a restore follows); all of them when its history file is missing."""
    timeline = archive_view(repo).timeline if timeline is None else timeline
    history = read_history(repo.archive, timeline)
    if timeline != 1 and not history:            # cannot tell
        return {b.id for b in repo.read()}
    return {b.id for b in repo.read()
            if descends(b.timeline, parse_lsn(b.stop_lsn), timeline, history)}


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
                chain_ok = chain_ok and cur.verification is Verification.VERIFIED
                break
            cur = by_id.get(cur.parent or "")
            if cur is None:
                chain_ok = False
        if chain_ok and b.id in on_lineage:
            out.append(b)
    return sorted(out, key=lambda b: parse_lsn(b.stop_lsn))


def compute(bins: PgBinaries, repo: Repository) -> RecoverableWindow:
    backups = usable_backups(repo)
    if not backups:
        return RecoverableWindow(None, None, None, None, None)
    first = backups[0]
    view = archive_view(repo)
    history = read_history(repo.archive, view.timeline)
    start = segment_of(parse_lsn(first.start_lsn))
    gaps: list[WalGap] = []
    end_segno = None
    gap = first_gap(view.segments, start, view.timeline, history)
    if gap is not None:
        end_segno = gap - 1
        later = [s.segno for s in view.segments if s.segno > gap]
        gaps.append(WalGap(segment_name(view.timeline, gap - 1), segment_name(view.timeline, gap),
                           segment_name(view.timeline, (min(later) - 1) if later else gap),
                           view.timeline))
    latest_lsn, latest_time = _tail(bins, view, end_segno)
    stop = parse_lsn(first.stop_lsn)
    if latest_lsn is None or latest_lsn < stop:
        latest_lsn, latest_time = stop, first.stop_time
    latest = max(latest_time or first.stop_time, first.stop_time)
    return RecoverableWindow(first.stop_time, first.stop_lsn, latest, format_lsn(latest_lsn),
                             view.timeline, gaps)


def _tail(bins: PgBinaries, view: ArchiveView,
          end_segno: int | None) -> tuple[int | None, datetime | None]:
    """The last record's LSN and the last commit's time, reading back from the newest segment
    until a commit is found (at most a few segments)."""
    candidates = [s for s in view.segments if end_segno is None or s.segno <= end_segno]
    candidates.sort(key=lambda s: (s.segno, s.timeline, not s.partial))
    last_lsn = None
    for seg in reversed(candidates[-8:]):
        summary = walread.summarize(bins, view.where[seg], seg)
        if last_lsn is None and summary.last_lsn is not None:
            last_lsn = summary.last_lsn
        if summary.commits:
            return last_lsn, summary.commits[-1].time
    return last_lsn, None
