"""From when a backup answers time targets: the time of its consistency point as PostgreSQL's
recovery sees it, read from the WAL rather than from a wall clock.

Recovery to a time T stops before the first record that ends a transaction later than T
(xlogrecovery.c); a stop before the backup's end (its stop LSN, where it is consistent) is an
error, and a transaction that ended before it is in the backup whatever T says. So a backup
reaches T exactly when every transaction that ended before its stop LSN ended at or before T
(before T, exclusive): its window starts at the latest of those ends. pgBackRest records the
stop time in whole seconds (the window started at the next whole second) and the local
provider the wall clock after pg_basebackup returned: both later than that point, so targets
between were refused although reachable.

The ends are read from the segment before the backup's first (a backup starts with a segment
switch) to its stop LSN; when none is there (an idle database) or that WAL cannot be read, the
recorded stop time stands. Read once per backup, kept in `<repository>/consistent.json`."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from typing import Any

from spectral.durable import write_atomic
from spectral.pg.binaries import PgBinaries
from spectral.providers.base import Backup
from spectral.providers.local import walread
from spectral.providers.local.repo import Repository
from spectral.providers.local.wal import parse_commit_line, parse_lsn
from spectral.providers.local.window import Lineage, lineage_of

VERSION = 1


def consistent_times(bins: PgBinaries, repo: Repository,
                     backups: list[Backup]) -> dict[str, datetime]:
    """Backup id -> the time from which it reaches time targets (never later than its
    recorded stop time)."""
    path = repo.root / "consistent.json"
    cache = _read(path)
    out: dict[str, datetime] = {}
    lin: Lineage | None = None
    changed = False
    for b in backups:
        hit = cache.get(b.id)
        if isinstance(hit, dict) and hit.get("stop_lsn") == b.stop_lsn:
            known = hit.get("time")      # None: that WAL was read and ends no transaction
            out[b.id] = min(datetime.fromisoformat(str(known)), b.stop_time) if known \
                else b.stop_time
            continue
        lin = lin or lineage_of(repo)
        read, found = _last_end_before_stop(bins, lin, b)
        out[b.id] = min(found, b.stop_time) if found is not None else b.stop_time
        if read:
            cache[b.id] = {"stop_lsn": b.stop_lsn,
                           "time": found.isoformat() if found is not None else None}
            changed = True
    if changed:
        with contextlib.suppress(OSError):   # only a cache: read again next time
            write_atomic(path, json.dumps({"version": VERSION, "backups": cache}) + "\n")
    return out


def _last_end_before_stop(bins: PgBinaries, lin: Lineage,
                          b: Backup) -> tuple[bool, datetime | None]:
    """Whether the WAL before the backup's stop LSN could be read (from the segment before its
    first), and the latest time a transaction ended in it."""
    stop = parse_lsn(b.stop_lsn)
    first, last_seg = lin.view.segno(parse_lsn(b.start_lsn)), lin.view.segno(max(stop - 1, 0))
    segments = [s for s in lin.segments if first - 1 <= s.segno <= last_seg]
    numbers = {s.segno for s in segments}
    if not all(n in numbers for n in range(first, last_seg + 1)):
        return False, None
    unreadable: list[walread.Unreadable] = []
    latest: datetime | None = None
    for line in walread.dump(bins, lin.view.where, segments, unreadable=unreadable,
                             rmgr="Transaction"):
        rec = parse_commit_line(line)
        if rec is not None and rec.lsn < stop and (latest is None or rec.time > latest):
            latest = rec.time
    if any(u.lsn < stop for u in unreadable):
        return False, None
    # nothing found is an answer only when the segment before the backup's was read too
    return latest is not None or first - 1 in numbers, latest


def _read(path: Any) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    backups = doc.get("backups") if isinstance(doc, dict) and doc.get("version") == VERSION \
        else None
    return backups if isinstance(backups, dict) else {}
