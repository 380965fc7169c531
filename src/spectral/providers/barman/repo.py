"""A Barman Cloud destination seen as spectral's `Repository` (local/repo.py): the backups of
barman-cloud-backup-list, the WAL of the server's wals/ folder (listed with boto3), each WAL
file fetched with barman-cloud-wal-restore (which decompresses it) into spectral's mirror
folder only when something reads it. The window, targets and WAL reading are then the local
provider's, unchanged; nothing is written to the destination.

barman-cloud-wal-archive stores a file as <prefix>/<server_name>/wals/<timeline+log>/<name>
(a history file directly under wals/), with a suffix when it compresses it."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spectral.errors import CouldNotVerify
from spectral.pg.osuser import make_owned_dir
from spectral.providers.barman.command import COMPRESSION_SUFFIXES, BarmanCloud
from spectral.providers.base import Backup, BackupKind, Verification
from spectral.providers.local import walsize
from spectral.providers.local.wal import Segment, history_timeline, parse_segment
from spectral.providers.pgbackrest.repo import FetchOnRead

WAL_NAME_RE = re.compile(r"^(?:[0-9A-F]{24}(?:\.partial)?|[0-9A-F]{8}\.history)$")
NOT_CHECKED = ("barman-cloud keeps no checksums of a backup's files: barman-cloud-restore "
               "reads every file of it on each restore, and a drill compares the copy")


def wal_name(key: str) -> str | None:
    """The WAL or history file an object of wals/ holds, or None (pure; unit-tested)."""
    base = key.rsplit("/", 1)[-1]
    for suffix in COMPRESSION_SUFFIXES:
        if base.endswith(suffix):
            base = base[:-len(suffix)]
            break
    return base if WAL_NAME_RE.match(base) else None


def server_version(number: Any) -> str:
    """barman's `version` (server_version_num: 180001, 90624) as 'major.minor' (pure)."""
    try:
        n = int(number)
    except (TypeError, ValueError):
        return "?"
    return f"{n // 10000}.{n % 10000}" if n >= 100000 else f"{n // 10000}.{n // 100 % 100}"


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    at = datetime.fromisoformat(str(value))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def backup_from_list(b: dict[str, Any]) -> Backup:
    """One entry of `barman-cloud-backup-list --format json` (pure; unit-tested)."""
    started = _time(b.get("begin_time_iso")) or datetime.fromtimestamp(0, UTC)
    # the latest its consistency point can be: never early (unknown: now)
    stopped = _time(b.get("end_time_iso")) or datetime.now(UTC)
    done = b.get("status") == "DONE" and b.get("end_xlog")
    if done:
        verification, detail, status = Verification.NOT_VERIFIED, NOT_CHECKED, "completed"
    else:
        verification, status = Verification.FAILED, str(b.get("status") or "?").lower()
        detail = f"barman-cloud lists it as {b.get('status')}: not a complete backup"
    return Backup(id=str(b["backup_id"]), kind=BackupKind.FULL, parent=None,
                  start_lsn=str(b.get("begin_xlog") or "0/0"),
                  stop_lsn=str(b.get("end_xlog") or b.get("begin_xlog") or "0/0"),
                  start_time=started, stop_time=stopped, timeline=int(b.get("timeline") or 1),
                  size_bytes=int(b.get("size") or 0),
                  duration_s=max(0.0, (stopped - started).total_seconds()),
                  server_version=server_version(b.get("version")), verification=verification,
                  verification_detail=detail, status=status, physical=True)


@dataclass(frozen=True)
class BarmanRepository:
    """`root` is spectral's folder for it (the WAL mirror, wal-checked.json, the spool)."""

    root: Path
    tool: BarmanCloud
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # barman-cloud-restore reads every file of the backup again on each restore
    checked_before_restore = True

    @property
    def archive(self) -> Path:
        return self.root / "wal"

    @property
    def stream(self) -> Path:
        return self.root / "stream"     # never written: barman-cloud-wal-archive fills wals/

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    def forget(self) -> None:
        self._cache.clear()

    # ---- backups ---------------------------------------------------------------------------
    def listed(self) -> dict[str, dict[str, Any]]:
        """barman-cloud-backup-list's entries by backup id."""
        if "listed" not in self._cache:
            self._cache["listed"] = {str(b.get("backup_id")): b for b in self.tool.backups()}
        listed: dict[str, dict[str, Any]] = self._cache["listed"]
        return listed

    def raw(self, backup_id: str) -> dict[str, Any]:
        found = self.listed().get(backup_id)
        if found is None:
            raise CouldNotVerify(f"backup {backup_id} is no longer in {self.tool.describe()}")
        return found

    def read(self) -> list[Backup]:
        return sorted((backup_from_list(b) for b in self.listed().values()),
                      key=lambda b: b.stop_time)

    def chain(self, backup: Backup) -> list[Backup]:
        return [backup]

    # ---- WAL ---------------------------------------------------------------------------------
    def listing(self) -> dict[str, str]:
        """WAL and history file names (uncompressed) -> the object key."""
        if "listing" not in self._cache:
            found: dict[str, str] = {}
            for key in sorted(self.tool.keys("wals/")):
                name = wal_name(key)
                if name is not None:
                    found.setdefault(name, key)
            self._cache["listing"] = found
        listing: dict[str, str] = self._cache["listing"]
        return listing

    def segment_size(self) -> int:
        """From the headers of the segments already in the mirror, else of the newest ones,
        fetched (walsize.py)."""
        return walsize.remembered(self._cache, lambda: walsize.of_archive(
            self.listing(), self._mirrored, self._fetched, self.tool.describe()))

    def _mirrored(self, name: str) -> Path | None:
        return p if (p := self.archive / name).exists() else None

    def _fetched(self, name: str) -> Path:
        if not (self.archive / name).exists():
            self._get(name)
        return self.archive / name

    def wal_files(self) -> dict[Segment, Path]:
        listed, size = self.listing(), self.segment_size()
        for name in listed:
            if name.endswith(".history") and not (self.archive / name).exists():
                self._get(name)
        items = [(seg, self.archive) for name in listed
                 if (seg := parse_segment(name, size)) is not None]
        return FetchOnRead(items, self._fetch)

    def history_timelines(self) -> list[int]:
        return [t for n in self.listing() if (t := history_timeline(n)) is not None]

    def backup_history(self, backup: Backup) -> str | None:
        return None   # its backups keep no pg_wal copy of their history that spectral reads

    def archived(self, segment: str) -> bool:
        self._cache.pop("listing", None)
        return segment in self.listing()

    def _fetch(self, seg: Segment) -> None:
        name = seg.name + (".partial" if seg.partial else "")
        if not (self.archive / name).exists():
            self._get(name)

    def _get(self, name: str) -> None:
        for d in (self.root, self.archive, self.spool):
            make_owned_dir(d, 0o750)
        part = self.archive / f".{name}.{time.monotonic_ns()}.part"
        try:
            self.tool.wal_restore(name, part, self.spool)
            if not part.is_file():
                raise CouldNotVerify(f"WAL file {name} is listed in {self.tool.describe()} but "
                                     f"barman-cloud-wal-restore did not fetch it")
            part.rename(self.archive / name)
        finally:
            part.unlink(missing_ok=True)
