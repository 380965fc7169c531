"""The backup repository as the window, target resolution, WAL reading and recovery see it
(`Repository`, a protocol: each repository strategy has its own, providers/repository.py), and
the local strategy's own (`LocalRepository`):

    <state_dir>/backups/
        catalog.json        every backup: id, kind, parent, LSNs, times, timeline, size, check
        base/<id>/          pg_basebackup output (plain format) with its backup_manifest
        wal/                the WAL archive (archive_library = basic_archive)
        stream/             pg_receivewal's output (the live tail, .partial included)
        wal-checked.json    archived segments already read whole (walcheck.py)
        lock                taken by writers of the catalog
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from spectral.durable import file_lock, write_atomic
from spectral.errors import CouldNotVerify
from spectral.providers.base import Backup
from spectral.providers.local import walsize
from spectral.providers.local.wal import Segment, parse_segment

CATALOG_VERSION = 1


class Repository(Protocol):
    """A strategy's backups and WAL archive, as the window, targets and recovery read them."""

    @property
    def root(self) -> Path:
        """Its folder in the state directory (what spectral keeps about it: wal-checked.json)."""

    # True when every restore checks its backup again before it is used (pgBackRest's verify):
    # then a backup not checked yet may be chosen, and is refused at restore if it fails
    @property
    def checked_before_restore(self) -> bool: ...

    @property
    def archive(self) -> Path:
        """The folder the archived WAL is read from."""

    @property
    def stream(self) -> Path:
        """pg_receivewal's folder (the live tail), if the strategy streams."""

    def read(self) -> list[Backup]: ...

    def segment_size(self) -> int:
        """The WAL segment size of its lineage in bytes, discovered (walsize.py): every name
        of `wal_files` is read with it."""

    def wal_files(self) -> dict[Segment, Path]:
        """Every WAL file -> the folder it is (or will be, once fetched) in."""

    def history_timelines(self) -> list[int]: ...

    def backup_history(self, backup: Backup) -> str | None:
        """The history file of `backup`'s timeline as the backup itself holds it (the copy
        pg_basebackup streams into its pg_wal), or None: timeline 1, or a repository that
        keeps no copy it reads."""

    def archived(self, segment: str) -> bool: ...

    def chain(self, backup: Backup) -> list[Backup]:
        """The full backup and the incrementals leading to `backup`, oldest first."""


def backup_chain(backups: list[Backup], backup: Backup) -> list[Backup]:
    """The full backup and the incrementals leading to `backup`, oldest first (pure)."""
    by_id = {b.id: b for b in backups}
    out = [backup]
    while out[0].parent is not None:
        parent = by_id.get(out[0].parent)
        if parent is None:
            raise CouldNotVerify(f"backup {backup.id} needs {out[0].parent}, which is not in "
                                 f"the catalog")
        out.insert(0, parent)
    return out


@dataclass(frozen=True)
class LocalRepository:
    """The local strategy's repository (the layout above)."""

    root: Path
    checked_before_restore = False

    @property
    def base(self) -> Path:
        return self.root / "base"

    @property
    def archive(self) -> Path:
        return self.root / "wal"

    @property
    def stream(self) -> Path:
        return self.root / "stream"

    @property
    def catalog_file(self) -> Path:
        return self.root / "catalog.json"

    def backup_dir(self, backup_id: str) -> Path:
        return self.base / backup_id

    def read(self) -> list[Backup]:
        if not self.catalog_file.exists():
            return []
        try:
            doc = json.loads(self.catalog_file.read_text())
        except ValueError as exc:
            raise CouldNotVerify(f"{self.catalog_file} is damaged ({exc})") from None
        if doc.get("version") != CATALOG_VERSION:
            raise CouldNotVerify(f"{self.catalog_file}: catalog version {doc.get('version')} "
                                 f"is not supported")
        return [Backup.from_json(b) for b in doc["backups"]]

    def write(self, backups: list[Backup]) -> None:
        doc = {"version": CATALOG_VERSION, "backups": [b.to_json() for b in backups]}
        write_atomic(self.catalog_file, json.dumps(doc, indent=1) + "\n")

    def segment_size(self) -> int:
        """From the headers of every segment in the archive and the stream."""
        return walsize.of_folders(self.archive, self.stream, where=str(self.root))

    def wal_files(self) -> dict[Segment, Path]:
        """Every WAL file of the archive (and pg_receivewal's tail) -> the folder it is in; the
        archive wins when both have a segment."""
        where: dict[Segment, Path] = {}
        size = self.segment_size()
        for d in (self.stream, self.archive):
            if d.is_dir():
                for p in d.iterdir():
                    seg = parse_segment(p.name, size)
                    if seg is not None:
                        where[seg] = d
        return where

    def history_timelines(self) -> list[int]:
        """Timelines with a history file in the archive (read_history reads them there)."""
        return [int(p.name[:8], 16) for p in self.archive.glob("*.history")] if \
            self.archive.is_dir() else []

    def backup_history(self, backup: Backup) -> str | None:
        path = self.base / backup.id / "pg_wal" / f"{backup.timeline:08X}.history"
        try:
            return path.read_text()
        except OSError:
            return None

    def archived(self, segment: str) -> bool:
        return (self.archive / segment).exists()

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """One writer at a time: backups, expiry and restores that read the catalog."""
        return file_lock(self.root / "lock")

    def get(self, backup_id: str) -> Backup | None:
        return next((b for b in self.read() if b.id == backup_id), None)

    def chain(self, backup: Backup) -> list[Backup]:
        return backup_chain(self.read(), backup)
