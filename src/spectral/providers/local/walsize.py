"""A lineage's WAL segment size, discovered, never assumed. initdb --wal-segsize chooses it (1 MB
to 1 GB, a power of two; Amazon RDS uses 64 MB) and a segment's name depends on it (segments
per log id = 4 GiB / size), so a name read with the wrong size gives the wrong segment number
and LSN: a wrong window, wrong gaps, wrong targets. Where it is read from:

- the live server: `wal_segment_size` in pg_settings (bytes);
- a data directory (a backup, a restored copy, a stopped server): pg_controldata's "Bytes per
  WAL segment";
- the WAL itself: a segment's first page long header (xlp_seg_size, walheader.py), counted
  only when the file holds exactly that many bytes (a truncated or damaged file is no
  evidence). Every header that can be had must agree: two sizes in one archive is a damaged
  or foreign archive, and it is named.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from spectral.errors import CouldNotVerify, SpectralError
from spectral.pg.binaries import PgBinaries
from spectral.pg.control import control_fact
from spectral.providers.local import walheader
from spectral.providers.local.wal import DEFAULT_SEG_SIZE, is_segment_name, valid_seg_size

SETTING_SQL = "select setting::bigint from pg_settings where name = 'wal_segment_size'"
FETCH_TRIES = 3      # newest segments fetched in turn when none is on this machine yet


def checked(size: int, source: str) -> int:
    if not valid_seg_size(size):
        raise CouldNotVerify(f"{source} gives a WAL segment size of {size} bytes, which no "
                             f"PostgreSQL cluster has (a power of two from 1 MB to 1 GB)")
    return size


def from_control(bins: PgBinaries, data_dir: Path) -> int:
    """A data directory's segment size, from its pg_control."""
    return checked(int(control_fact(bins, data_dir, "Bytes per WAL segment")),
                   f"pg_control of {data_dir}")


def from_setting(value: object, source: str = "the server") -> int:
    """The server's `wal_segment_size` (SETTING_SQL's value)."""
    return checked(int(str(value)), source)


def from_header(path: Path) -> int | None:
    """The size a segment file's own first page says, when the file is a whole segment of that
    size; None when it says nothing trustworthy (no long header, truncated, damaged)."""
    header = walheader.read(path)
    if header is None or not header.info & walheader.LONG_HEADER or header.magic == 0:
        return None
    if not valid_seg_size(header.seg_size) or header.block_size != walheader.BLOCK:
        return None
    try:
        return header.seg_size if path.stat().st_size == header.seg_size else None
    except OSError:
        return None


def agreed(paths: Iterable[Path], where: str) -> int | None:
    """The size every readable segment header among `paths` gives; None when none gives one.
    Two sizes: CouldNotVerify naming a file of each."""
    seen: dict[int, str] = {}
    for path in paths:
        size = from_header(path)
        if size is not None:
            seen.setdefault(size, path.name)
    if len(seen) > 1:
        (a, fa), (b, fb) = sorted(seen.items())[:2]
        raise CouldNotVerify(f"the WAL segments of {where} disagree on the segment size: {fa} "
                             f"is of {mb(a)}, {fb} of {mb(b)}: a damaged or foreign archive",
                             hint="every WAL file of one lineage has the size initdb "
                                  "--wal-segsize gave its cluster")
    return next(iter(seen), None)


def mb(size: int) -> str:
    return f"{size // (1 << 20)} MB"


def of_archive(names: Iterable[str], local: Callable[[str], Path | None],
               fetch: Callable[[str], Path] | None, where: str) -> int | None:
    """The segment size of an archive whose WAL file `names` are listed: from every file
    already on this machine (`local`), else from the newest ones fetched (`fetch`, a repository
    that fetches on read) until one answers. None with no WAL file at all (no name to read),
    or only a `.partial` one not written yet (pg_receivewal's first, zero-filled); with
    complete segments of which none answers, CouldNotVerify."""
    segments = sorted((n for n in names if is_segment_name(n)), key=lambda n: n[8:24])
    whole = [n for n in reversed(segments) if not n.endswith(".partial")]
    size = agreed((p for n in segments if (p := local(n)) is not None), where)
    if size is None and fetch is not None:
        size = _fetched(whole, fetch)
    if size is None and whole:
        raise CouldNotVerify(f"the WAL segment size of {where} cannot be read: no segment's "
                             f"first page header gives it (every file damaged or truncated)")
    return size


def _fetched(newest_first: list[str], fetch: Callable[[str], Path]) -> int | None:
    for name in newest_first[:FETCH_TRIES]:
        try:
            size = from_header(fetch(name))
        except SpectralError:      # cannot be fetched: the next one
            continue
        if size is not None:
            return size
    return None


def of_folders(*folders: Path, where: str) -> int:
    """The size of the segments in local folders (every file's header read); with no WAL
    file there, DEFAULT_SEG_SIZE (no name to misread)."""
    files = {p.name: p for d in folders if d.is_dir() for p in d.iterdir()}
    return of_archive(files, files.get, None, where) or DEFAULT_SEG_SIZE


def remembered(cache: dict[str, Any], discover: Callable[[], int | None]) -> int:
    """A repository's size, discovered once per reading of it (`cache`, cleared when it is
    listed again); with no WAL file yet DEFAULT_SEG_SIZE, not remembered: the next listing may
    hold the first one."""
    found: int | None = cache.get("segment_size")    # one look: see pgbackrest/repo.py info
    if found is None:
        found = discover()
        if found is None:
            return DEFAULT_SEG_SIZE
        cache["segment_size"] = found
    return found
