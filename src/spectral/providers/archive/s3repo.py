"""A plain archive in S3 seen as spectral's `Repository` (local/repo.py): the backups of the
base backups prefix (s3backups.py), the WAL of the WAL prefix, listed with ListObjectsV2. A
WAL file is fetched into spectral's mirror folder (decompressed when the archive_command
compressed it) only when something reads it; the window, targets and WAL reading are then
the local provider's, unchanged, and a restored server's restore_command reads the mirror.
Nothing is written to the bucket."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spectral.errors import CommandError, CouldNotVerify
from spectral.pg.osuser import give_to_server, make_owned_dir
from spectral.providers.archive.backups import DECOMPRESS, label, lsn_of
from spectral.providers.archive.s3 import S3Object, S3Prefixes
from spectral.providers.archive.s3backups import S3Backup, S3Catalog, major_of_magic
from spectral.providers.base import Backup
from spectral.providers.local import walheader, walsize
from spectral.providers.local.wal import Segment, history_timeline, is_segment_name, parse_segment
from spectral.providers.pgbackrest.repo import FetchOnRead
from spectral.runner import run

HISTORY_SUFFIX = ".history"


def wal_name(key: str) -> tuple[str, str] | None:
    """The WAL, history or backup history file an object holds and its compression suffix
    ('' when plain), or None for an object that is none of these (pure)."""
    base = key.rsplit("/", 1)[-1]
    suffix = next((s for s in DECOMPRESS if base.endswith(s)), "")
    name = base.removesuffix(suffix) if suffix else base
    if name.startswith(".") or not (is_segment_name(name) or name.endswith(HISTORY_SUFFIX)
                                    or name.endswith(".backup")):
        return None
    return name, suffix


@dataclass(frozen=True)
class S3ArchiveRepository:
    """`root` is spectral's folder for it (the WAL mirror, wal-checked.json)."""

    root: Path
    s3: S3Prefixes
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    checked_before_restore = True     # pg_verifybackup on every restore (with a manifest)

    @property
    def archive(self) -> Path:
        return self.root / "wal"

    @property
    def stream(self) -> Path:
        return self.root / "stream"     # never written: the team's archive_command fills wal

    def forget(self) -> None:
        self._cache.clear()

    # ---- the team's WAL prefix ---------------------------------------------------------------
    def listing(self) -> dict[str, S3Object]:
        """WAL, history and backup history file names (uncompressed) -> the object."""
        if "listing" not in self._cache:
            found: dict[str, S3Object] = {}
            for o in sorted(self.s3.objects(self.s3.cfg.wal), key=lambda o: o.key):
                named = wal_name(o.key)
                if named is not None:
                    found.setdefault(named[0], o)
            self._cache["listing"] = found
        listing: dict[str, S3Object] = self._cache["listing"]
        return listing

    def segment_size(self) -> int:
        """From the headers of the segments already in the mirror, else of the newest ones,
        fetched (walsize.py)."""
        return walsize.remembered(self._cache, lambda: walsize.of_archive(
            self.listing(), lambda n: p if (p := self.archive / n).exists() else None,
            self.fetch, self.s3.cfg.wal))

    def wal_files(self) -> dict[Segment, Path]:
        listed, size = self.listing(), self.segment_size()
        for name in listed:
            if name.endswith(HISTORY_SUFFIX):
                self.fetch(name)
        return FetchOnRead([(seg, self.archive) for name in listed
                            if (seg := parse_segment(name, size)) is not None], self._fetch)

    def history_timelines(self) -> list[int]:
        return [t for n in self.listing() if (t := history_timeline(n)) is not None]

    def backup_history(self, backup: Backup) -> str | None:
        return None   # its backups keep no pg_wal copy of their history that spectral reads

    def archived(self, segment: str) -> bool:
        self._cache.pop("listing", None)
        return segment in self.listing()

    def _fetch(self, seg: Segment) -> None:
        self.fetch(seg.name + (".partial" if seg.partial else ""))

    def fetch(self, name: str) -> Path:
        """The team's file `name`, uncompressed, in the mirror (fetched once)."""
        dest = self.archive / name
        if dest.exists():
            return dest
        found = self.listing().get(name)
        if found is None:
            raise CouldNotVerify(f"WAL file {name} is not in {self.s3.cfg.wal}")
        for d in (self.root, self.archive):
            make_owned_dir(d, 0o750)
        part = self.archive / f".{name}.{time.monotonic_ns()}.part"
        raw = part.with_suffix(".raw")
        named = wal_name(found.key)
        suffix = named[1] if named else ""
        try:
            self.s3.download(self.s3.cfg.wal, found.key, raw if suffix else part, found.size)
            if suffix:
                run([DECOMPRESS[suffix], "-dc", str(raw)], timeout=600, stdout_path=part)
            give_to_server(part)
            part.rename(dest)
        except CommandError as exc:
            raise CouldNotVerify(f"WAL file {found.key} in {self.s3.cfg.wal} cannot be read: "
                                 f"{exc.message}") from None
        finally:
            part.unlink(missing_ok=True)
            raw.unlink(missing_ok=True)
        return dest

    def fetch_from(self, segno: int) -> None:
        """Every listed segment from `segno` on into the mirror, several at a time (what a
        restore from a backup starting there reads); one that cannot be fetched is where the
        WAL ends, as the window named it."""
        files = self.wal_files()
        assert isinstance(files, FetchOnRead)
        files.prefetch(sorted(s for s in files if s.segno >= segno))

    def major_at(self, segment: str) -> str:
        """The major of the WAL in `segment` (its first page's magic), or '?'."""
        try:
            header = walheader.read(self.fetch(segment))
        except CouldNotVerify:
            return "?"
        return major_of_magic(header.magic if header else None)

    # ---- the team's base backups -------------------------------------------------------------
    @property
    def catalog(self) -> S3Catalog:
        return S3Catalog(self.s3, self.major_at, self.root / "s3-backups.json")

    def backup_histories(self) -> dict[str, str]:
        """The backup history files of the WAL prefix, by their START WAL LOCATION."""
        out = {}
        for name in self.listing():
            if name.endswith(".backup"):
                text = self.fetch(name).read_text(errors="replace")
                try:
                    out[lsn_of(label(text)["START WAL LOCATION"])] = text
                except (KeyError, CouldNotVerify):
                    continue
        return out

    def read(self) -> list[Backup]:
        if "backups" not in self._cache:
            histories = self.backup_histories()
            catalog = self.catalog
            self._cache["backups"] = sorted(catalog.entries(catalog.backups(), histories),
                                            key=lambda b: b.stop_time)
        backups: list[Backup] = self._cache["backups"]
        return backups

    def chain(self, backup: Backup) -> list[Backup]:
        return [backup]

    def objects_of(self, backup_id: str) -> S3Backup:
        found = {b.id: b for b in self.catalog.backups()}.get(backup_id)
        if found is None:
            raise CouldNotVerify(f"backup {backup_id} is no longer in {self.s3.cfg.base_backups}")
        return found
