"""The newest commit along the lineage before a point, reading back from the newest segment in
growing chunks, with what each archived segment holds remembered: an archived segment never
changes, so a walk over a long commit-free stretch (an idle database: segment switches,
checkpoints, autovacuum) reads it once, and every later walk reads only the segments archived
since. Used by the recoverable window (its last commit) and by a drill's RPO (the newest
commit before the recovery point), for every repository whose WAL pg_waldump reads.

    <repository>/wal-commits.json
        {"version": 1, "segments": {"<file name>": {"key": "<identity>|<next identity>",
                                                     "commit": ["<lsn>", "<time>"] | null}}}

An entry is a segment's last committed commit record (or none) among the records that begin
in it, read together with the segment after it (a record crossing into it is read whole). It is
keyed by both files' identity: the repository's checksum where it records one (pgBackRest
stores every WAL file under its SHA-1, `identity` of its WAL files), else the file's size,
modification and change times and inode, which any write changes (no tool can set a change
time back). A segment replaced by different content, or a different next segment (another
timeline's), misses. A damaged or unreadable file or entry is a miss; the file is bounded
(`MAX_ENTRIES`, the newest kept; a larger file, `MAX_BYTES`, is a miss)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

from spectral.durable import write_atomic
from spectral.pg.binaries import PgBinaries
from spectral.providers.local import walread
from spectral.providers.local.wal import Segment, format_lsn, parse_commit_line
from spectral.providers.local.wal import parse_lsn as _parse_lsn

VERSION = 1
MAX_ENTRIES = 8192      # about 1 MB of JSON: 128 GB of 16 MB segments
MAX_BYTES = 64 << 20    # larger than any file written (MAX_ENTRIES): not read, a miss
FIRST_CHUNK = 4
Fact = tuple[int, datetime] | None   # a segment's last committed commit: (LSN, time), or none


@dataclass(frozen=True)
class Walk:
    """What a walk back needs: the lineage's files (`where`) and segments (ascending, one per
    number), `cap` the LSN past which the lineage's newest file is not on it (or None), and
    the remembered facts' file."""

    bins: PgBinaries
    where: dict[Segment, Path]
    lineage: list[Segment]
    cap: int | None
    cache: Path

    @cached_property
    def by_number(self) -> dict[int, Segment]:
        return {s.segno: s for s in self.lineage}


def newest_commit(walk: Walk, *, low: int, high: int | None) -> tuple[int, datetime] | None:
    """The newest committed commit record with `low` <= LSN < `high` (None: the end of the
    lineage) on the lineage, or None when there is none."""
    bound = _min(high, walk.cap)
    candidates = [s for s in walk.lineage if bound is None or s.start_lsn() < bound]
    known = _load(walk.cache)
    remembered = dict(known)
    chunk, hi = FIRST_CHUNK, len(candidates)
    found: tuple[int, datetime] | None = None
    while hi > 0 and found is None:
        lo = max(0, hi - chunk)
        part = candidates[lo:hi]
        facts = _facts(walk, part, bound, remembered)
        for seg in reversed(part):
            fact = facts[seg]
            if fact is not None and fact[0] >= low:
                found = fact
                break
            if seg.start_lsn() <= low or fact is not None:   # every commit before: before low
                hi = 0
                break
        else:
            hi, chunk = lo, chunk * 4
    if remembered != known:
        _save(walk.cache, remembered, walk.lineage)
    return found


def _facts(walk: Walk, part: list[Segment], bound: int | None,
           remembered: dict[str, tuple[str, Fact]]) -> dict[Segment, Fact]:
    """Each segment's fact: remembered, else read (each run of segments not remembered with
    the segment after it, one pg_waldump per run)."""
    keys = {seg: _key(walk, seg, bound) for seg in part}
    out: dict[Segment, Fact] = {}
    todo: list[Segment] = []
    for seg in part:
        key = keys[seg]
        entry = remembered.get(_name(seg)) if key is not None else None
        if entry is not None and entry[0] == key:
            out[seg] = entry[1]
        else:
            todo.append(seg)
    for run in walread.runs(todo):
        read = _read(walk, run, bound)
        for seg in run:
            out[seg] = read.facts.get(seg)
            key = keys[seg]
            if key is not None and seg not in read.unreadable and \
                    _successor(walk, seg) not in read.unreadable:
                remembered[_name(seg)] = (key, out[seg])
    return out


@dataclass
class _Read:
    facts: dict[Segment, Fact]
    unreadable: set[Segment]


def _read(walk: Walk, run: list[Segment], bound: int | None) -> _Read:
    """The run's last commit per segment (records before `bound`), read with the segment after
    it; only transaction records are printed (pg_waldump --rmgr: every record still decoded)."""
    nxt = _successor(walk, run[-1])
    segments = run + ([nxt] if nxt is not None else [])
    by_number = {s.segno: s for s in run}
    size = run[0].size
    unreadable: list[walread.Unreadable] = []
    facts: dict[Segment, Fact] = {}
    for line in walread.dump(walk.bins, walk.where, segments, cap=walk.cap,
                             unreadable=unreadable, rmgr="Transaction"):
        rec = parse_commit_line(line)
        if rec is None or not rec.committed or (bound is not None and rec.lsn >= bound):
            continue
        seg = by_number.get(rec.lsn // size)
        if seg is not None:
            facts[seg] = (rec.lsn, rec.time)
    return _Read(facts, {u.segment for u in unreadable})


def _successor(walk: Walk, seg: Segment) -> Segment | None:
    return walk.by_number.get(seg.segno + 1)


def _key(walk: Walk, seg: Segment, bound: int | None) -> str | None:
    """The identity of the segment and the one after it, or None when its fact cannot be
    remembered: a `.partial` file, no next segment, or the bound inside it or the next."""
    nxt = _successor(walk, seg)
    if seg.partial or nxt is None or nxt.partial or \
            (bound is not None and nxt.end_lsn() > bound):
        return None
    mine, theirs = identity(walk.where, seg), identity(walk.where, nxt)
    return f"{mine}|{theirs}" if mine and theirs else None


def identity(where: dict[Segment, Path], seg: Segment) -> str | None:
    """A WAL file's identity without reading it: the repository's own checksum when it keeps
    one (`where.identity`), else the local file's stat (None: not on this machine)."""
    of: Callable[[Segment], str | None] | None = getattr(where, "identity", None)
    if of is not None:
        return of(seg)
    folder = dict.get(where, seg)     # never a fetch for a look at a name
    if folder is None:
        return None
    try:
        st = os.stat(Path(folder) / _name(seg))
    except OSError:
        return None
    return f"{seg.name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def _name(seg: Segment) -> str:
    return seg.name + (".partial" if seg.partial else "")


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _load(cache: Path) -> dict[str, tuple[str, Fact]]:
    """The remembered facts; a file or entry that cannot be read is left out (a miss)."""
    try:
        if cache.stat().st_size > MAX_BYTES:   # never parsed whole into memory
            return {}
        doc = json.loads(cache.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(doc, dict) or doc.get("version") != VERSION or \
            not isinstance(doc.get("segments"), dict):
        return {}
    out: dict[str, tuple[str, Fact]] = {}
    for name, entry in doc["segments"].items():
        parsed = _entry(entry)
        if parsed is not None:
            out[str(name)] = parsed
    return out


def _entry(entry: object) -> tuple[str, Fact] | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
        return None
    commit = entry.get("commit", "missing")
    if commit is None:
        return entry["key"], None
    try:
        lsn, when = commit
        at = datetime.fromisoformat(when)
        fact = (_parse_lsn(lsn), at)
    except (TypeError, ValueError, AttributeError):
        return None
    return (entry["key"], fact) if at.tzinfo is not None else None


def _save(cache: Path, facts: dict[str, tuple[str, Fact]], lineage: list[Segment]) -> None:
    """The facts of the lineage's segments, the newest `MAX_ENTRIES` of them."""
    live = [_name(s) for s in lineage]
    kept = [n for n in live if n in facts][-MAX_ENTRIES:]
    doc = {"version": VERSION, "segments": {
        n: {"key": facts[n][0], "commit": _fact_json(facts[n][1])} for n in kept}}
    with contextlib.suppress(OSError):   # remembering saves reading; a miss reads again
        write_atomic(cache, json.dumps(doc) + "\n")


def _fact_json(fact: Fact) -> list[str] | None:
    return None if fact is None else [format_lsn(fact[0]), fact[1].isoformat()]
