"""The stream folder against the server's history.

pg_receivewal resumes after the newest segment in its folder, on that segment's timeline
(FindStreamingStart). After an in-place restore the server is on a new timeline, and after an
undo it is back on the old one; a resume point the server's history does not hold ("requested
starting point ... is not in this server's history") makes it fail for ever. Before each start
the files in the way are set aside in `abandoned/` (never deleted, never over an earlier file
there), and files set aside earlier that are on the server's history again (an undo) come
back. A file's timeline and segment number name its content: the same name always holds the
same WAL, so a file that comes back is the server's own history. The window's readers read
only the folder itself, never `abandoned/`."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from spectral.durable import fsync_dir
from spectral.pg.cluster import Cluster
from spectral.pg.osuser import make_owned_dir
from spectral.providers.local import walsize
from spectral.providers.local.wal import Segment, parse_segment

ASIDE = "abandoned"

Lineage = list[tuple[int, int | None]]   # (timeline, where the server's history left it)


def server_lineage(cluster: Cluster,
                   conn: psycopg.Connection[Any]) -> tuple[int, Lineage, int]:
    """The server's flush LSN, for each timeline of its ancestry where it ended (None for the
    current one), from the history file in its own pg_wal, and its WAL segment size."""
    from spectral.providers.local.wal import parse_lsn, read_history

    row = conn.execute("select pg_current_wal_flush_lsn()::text, "
                       "pg_walfile_name(pg_current_wal_flush_lsn()), "
                       f"({walsize.SETTING_SQL})").fetchone()
    assert row is not None
    tli = int(str(row[1])[:8], 16)
    spans: Lineage = [(h.timeline, h.switch_lsn) for h in
                      read_history(cluster.data_dir / "pg_wal", tli)]
    return parse_lsn(str(row[0])), [*spans, (tli, None)], walsize.from_setting(row[2])


def resume_order(seg: Segment) -> tuple[int, int, bool]:
    """pg_receivewal resumes after the highest segment number, the highest timeline among
    equals, a complete file before a .partial one (FindStreamingStart)."""
    return seg.segno, seg.timeline, not seg.partial


def segments_to_set_aside(names: list[str], lineage: Lineage, flush_lsn: int,
                          seg_size: int) -> list[str]:
    """The stream's files that keep pg_receivewal from resuming on the server's history:
    those of a timeline the server's history does not hold (or past where it left that
    timeline), and then, newest first, each file pg_receivewal would resume from while that
    point is not in the server's history or the file is the one in which an older timeline
    forked off (its bytes past the fork belong to the abandoned history)."""
    ends = dict(lineage)
    segs = [s for s in (parse_segment(n, seg_size) for n in names) if s is not None]

    def on_lineage(seg: Segment) -> bool:
        end = ends.get(seg.timeline, -1)
        return seg.timeline in ends and (end is None or seg.start_lsn() < end)

    aside = [s for s in segs if not on_lineage(s)]
    rest = sorted((s for s in segs if on_lineage(s)), key=resume_order)
    while rest and blocks(rest[-1], ends, flush_lsn):
        aside.append(rest.pop())
    return sorted(s.name + (".partial" if s.partial else "") for s in aside)


def blocks(seg: Segment, ends: dict[int, int | None], flush_lsn: int) -> bool:
    """Whether pg_receivewal, resuming from `seg` (at its start for a .partial, after it for
    a complete one), would ask for a point the server's history does not hold, or `seg` is
    the segment in which its timeline forked off (its bytes past the fork are another
    history's)."""
    start = seg.start_lsn() if seg.partial else seg.end_lsn()
    end = ends.get(seg.timeline, -1)
    if seg.timeline not in ends:
        return True
    if end is None:
        return start > flush_lsn
    return start > end or seg.start_lsn() < end < seg.end_lsn()


def archived_resume_point(present: list[str], archived: list[str], lineage: Lineage,
                          flush_lsn: int, seg_size: int) -> str | None:
    """The server removes a segment only once it is archived: when it no longer has the WAL at
    the stream's resume point ("requested WAL segment ... has already been removed"), the
    newest complete archived segment of its history past that point, for the stream to resume
    after (the WAL between is in the archive, which the window reads too); None when there is
    none."""
    ends = dict(lineage)
    usable = [s for s in (parse_segment(n, seg_size) for n in archived)
              if s is not None and not s.partial and not blocks(s, ends, flush_lsn)]
    if not usable:
        return None
    best = max(usable, key=resume_order)
    mine = [s for s in (parse_segment(n, seg_size) for n in present) if s is not None]
    if mine and resume_order(max(mine, key=resume_order)) >= resume_order(best):
        return None
    return best.name


def resume_from_archive(stream_dir: Path, archive: Path, lineage: Lineage,
                        flush_lsn: int, seg_size: int) -> str | None:
    """Copy archived_resume_point into the stream folder (whole, then renamed, fsynced)."""
    present = [p.name for p in stream_dir.iterdir() if p.is_file()]
    archived = [p.name for p in archive.iterdir()] if archive.is_dir() else []
    name = archived_resume_point(present, archived, lineage, flush_lsn, seg_size)
    if name is None:
        return None
    source = archive / name
    tmp = stream_dir / f".{name}.copy"
    shutil.copyfile(source, tmp)
    st = source.stat()
    os.chown(tmp, st.st_uid, st.st_gid)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    tmp.rename(stream_dir / name)
    fsync_dir(stream_dir)
    return name


def segments_to_bring_back(present: list[str], aside: list[str], lineage: Lineage,
                           flush_lsn: int, seg_size: int) -> list[str]:
    """Files set aside earlier that the server's history holds again, whole (an undo put the
    old timeline back), and that would not be in the way: the stream resumes after them."""
    ends = dict(lineage)

    def whole(name: str) -> bool:   # on the history, with no byte of another one in it
        seg = parse_segment(name, seg_size)
        if seg is None or name in present or seg.timeline not in ends:
            return False
        end = ends[seg.timeline]
        return end is None or seg.end_lsn() <= end

    candidates = [n for n in aside if whole(n)]
    blocked = set(segments_to_set_aside(present + candidates, lineage, flush_lsn, seg_size))
    return sorted(n for n in candidates if n not in blocked)


def align_stream_dir(cluster: Cluster, stream_dir: Path) -> list[str]:
    """The stream folder aligned with the running server's history; what was set aside."""
    with cluster.connect() as conn:
        flush_lsn, lineage, seg_size = server_lineage(cluster, conn)
    return align(stream_dir, lineage, flush_lsn, seg_size)[0]


def align(stream_dir: Path, lineage: Lineage, flush_lsn: int,
          seg_size: int) -> tuple[list[str], list[str]]:
    """Bring back what is on the history again, then set aside what is in the way: the
    names set aside and the names brought back."""
    folder = stream_dir / ASIDE
    aside = [p.name for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    present = [p.name for p in stream_dir.iterdir() if p.is_file()]
    back = segments_to_bring_back(present, aside, lineage, flush_lsn, seg_size)
    for name in back:
        (folder / name).rename(stream_dir / name)
    return set_aside_blocking(stream_dir, lineage, flush_lsn, seg_size), back


def set_aside_blocking(stream_dir: Path, lineage: Lineage, flush_lsn: int,
                       seg_size: int) -> list[str]:
    """Set aside what keeps the stream from resuming on the server's history."""
    names = [p.name for p in stream_dir.iterdir() if p.is_file()]
    moved = segments_to_set_aside(names, lineage, flush_lsn, seg_size)
    if moved:
        folder = make_owned_dir(stream_dir / ASIDE, 0o750)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        for name in moved:
            dest = folder / name
            if dest.exists():
                dest = folder / f"{name}.{stamp}"
            (stream_dir / name).rename(dest)
    return moved
