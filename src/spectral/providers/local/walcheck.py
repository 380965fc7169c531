"""Which segments of the lineage can be read whole, without reading every segment on every
command: a segment pg_waldump read to its end once (with the next one, so a record crossing
into it was checked too) is remembered by its file's identity (size, modification and change
times, inode). Any write to the file changes its change time, which no tool can set back, so a
segment changed since is read again; the newest segment and `.partial` files always are.

    <repository>/wal-checked.json   {"version": 1, "clean": {"<path>": [size, mtime, ctime, ino]},
                                     "system_identifier": <what the segments' headers agreed on>}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from spectral.durable import write_atomic
from spectral.pg.binaries import PgBinaries
from spectral.providers.local import walheader, walread
from spectral.providers.local.wal import Segment

VERSION = 1
Stamp = list[int]


def unreadable(bins: PgBinaries, where: dict[Segment, Path], segments: list[Segment], *,
               cap: int | None, cache: Path) -> list[walread.Unreadable]:
    """walread.check of the segments (ascending, one per number), reading only those not
    known to be whole, each with the segment before it."""
    before, cached = _load(cache)
    known = dict(before)
    sysid = cached
    if sysid is None:   # the cluster's, from the segments' own headers (kept once agreed)
        sysid = walheader.consensus([walheader.read(p) for s in segments
                                     if (p := walheader.of(where, s)) is not None])
    newest = segments[-1] if segments else None
    todo: set[int] = set()
    for i, seg in enumerate(segments):
        stamp = _stamp(where, seg)
        if seg.partial or seg == newest or stamp is None or known.get(_path(where, seg)) != stamp:
            todo.add(seg.segno)
            if i > 0 and segments[i - 1].segno == seg.segno - 1:
                todo.add(seg.segno - 1)      # a record crossing into it is read whole
    reading = [s for s in segments if s.segno in todo]
    found = walread.check(bins, where, reading, cap=cap, sysid=sysid)
    bad = {u.segment.segno for u in found}
    ends = {part[-1].segno for part in walread.runs(reading)}
    for seg in reading:
        stamp = _stamp(where, seg)
        if seg.segno not in bad and seg.segno not in ends and not seg.partial and stamp:
            known[_path(where, seg)] = stamp
    current = {_path(where, s) for s in segments}
    kept = {k: v for k, v in known.items() if k in current}
    if kept != before or sysid != cached:
        write_atomic(cache, json.dumps({"version": VERSION, "clean": kept,
                                        "system_identifier": sysid}) + "\n")
    return found


def _path(where: dict[Segment, Path], seg: Segment) -> str:
    # dict.get: a repository that fetches on read is not asked to fetch for a look at a name
    folder = dict.get(where, seg)
    return str(Path(folder or ".") / (seg.name + (".partial" if seg.partial else "")))


def _stamp(where: dict[Segment, Path], seg: Segment) -> Stamp | None:
    try:
        st = os.stat(_path(where, seg))
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _load(cache: Path) -> tuple[dict[str, Stamp], int | None]:
    """The segments known whole, and the system identifier their headers agreed on."""
    try:
        doc = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}, None
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        return {}, None
    clean = doc.get("clean")
    sysid = doc.get("system_identifier")
    return ({str(k): list(v) for k, v in clean.items()} if isinstance(clean, dict) else {},
            sysid if isinstance(sysid, int) else None)
