"""The long header of a WAL segment's first page (PostgreSQL's XLogLongPageHeaderData:
src/include/access/xlog_internal.h), which pg_waldump checks only in part. It cannot know the
cluster's system identifier, so damage to it passes pg_waldump, and PostgreSQL's recovery then
stops at that segment ("WAL file is from different database system"). 40 bytes per segment:
magic, info, timeline, page address, remaining length, (padding), system identifier, segment
size, block size, little-endian on the platforms PostgreSQL runs here."""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from spectral.providers.local.wal import Segment

LONG_HEADER = 0x0002          # XLP_LONG_HEADER in xlp_info
BLOCK = 8192
_FORMAT = struct.Struct("<HHIQI4xQII")


@dataclass(frozen=True)
class LongHeader:
    magic: int
    info: int
    sysid: int
    seg_size: int
    block_size: int


def read(path: Path) -> LongHeader | None:
    try:
        with open(path, "rb") as f:
            raw = f.read(_FORMAT.size)
    except OSError:
        return None
    if len(raw) < _FORMAT.size:
        return None
    magic, info, _tli, _addr, _rem, sysid, seg_size, block = _FORMAT.unpack(raw)
    return LongHeader(magic, info, sysid, seg_size, block)


def problem(header: LongHeader | None, expected_sysid: int | None, seg_size: int, *,
            partial: bool = False) -> str | None:
    """Why the segment's first page header cannot be PostgreSQL's for this cluster, whose
    segments are of `seg_size` bytes (the lineage's, walsize.py). A `.partial` segment
    pg_receivewal has created (zero-filled) but not written to yet has no header: nothing to
    check."""
    if header is None:
        return "its first page cannot be read"
    if partial and header.magic == 0 and header.info == 0:
        return None
    if not header.info & LONG_HEADER:
        return "its first page header is damaged (no long header)"
    if header.seg_size != seg_size or header.block_size != BLOCK:
        return (f"its first page header is damaged (segment size {header.seg_size}, block "
                f"size {header.block_size})")
    if expected_sysid is not None and header.sysid != expected_sysid:
        return (f"its first page header names another database system ({header.sysid}, not "
                f"{expected_sysid})")
    return None


def consensus(headers: list[LongHeader | None]) -> int | None:
    """The system identifier most segments' headers hold, when at least two agree and more
    than half of the readable ones do."""
    found = Counter(h.sysid for h in headers if h is not None and h.info & LONG_HEADER)
    if not found:
        return None
    sysid, count = found.most_common(1)[0]
    return sysid if count >= 2 and count * 2 > sum(found.values()) else None


def of(where: dict[Segment, Path], seg: Segment) -> Path | None:
    """The segment's file when it is on this machine (a repository that fetches on read is not
    asked to fetch for a header)."""
    folder = dict.get(where, seg)
    if folder is None:
        return None
    path = Path(folder) / (seg.name + (".partial" if seg.partial else ""))
    return path if path.exists() else None
