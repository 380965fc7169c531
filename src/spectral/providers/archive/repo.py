"""A plain archive seen as spectral's `Repository` (local/repo.py): the backups of the base
backups folder, the WAL of the WAL folder. Plain segments are read where they are; a
compressed one (`.gz`, `.lz4`, `.zst`, as an archive_command wrote it) is decompressed into
spectral's mirror folder when something reads it; history files are mirrored, being read by
name. Nothing is written to the team's folders."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spectral.errors import CommandError, CouldNotVerify
from spectral.pg.osuser import give_to_server, make_owned_dir
from spectral.providers.archive.backups import DECOMPRESS, find, label, lsn_of, to_backup
from spectral.providers.base import Backup
from spectral.providers.local import walsize
from spectral.providers.local.wal import Segment, history_timeline, is_segment_name, parse_segment
from spectral.runner import run

HISTORY_SUFFIX = ".history"
IN_FLIGHT = 3.0     # seconds since a file of the WAL folder last changed


class DecompressOnRead(dict[Segment, Path]):
    """Segment -> folder; reading a compressed one decompresses it into the mirror first."""

    def __init__(self, repo: ArchiveRepository, plain: dict[Segment, Path],
                 packed: dict[Segment, Path]) -> None:
        super().__init__({**plain, **{s: repo.archive for s in packed}})
        self.repo, self.packed = repo, packed

    def __getitem__(self, seg: Segment) -> Path:
        if seg in self.packed:
            self.repo.unpack(self.packed[seg])
        return super().__getitem__(seg)


def in_flight(path: Path, name: str) -> bool:
    """Whether the team's archive_command is still writing `path`: `cp %p` and `gzip > ...`
    write in place, so a file changed in the last IN_FLIGHT seconds is not archived yet when
    it is a plain segment short of its size (its own first page says the size, walsize.py) or
    a compressed file that does not decompress to its end. Older, such a file is damage (the
    window names it)."""
    try:
        st = path.stat()
    except OSError:
        return False
    if time.time() - st.st_mtime >= IN_FLIGHT:
        return False
    if path.name == name:
        return is_segment_name(name) and walsize.from_header(path) is None
    try:
        run([DECOMPRESS[path.suffix], "-t", str(path)], timeout=600)
    except CommandError:
        return True
    return False


@dataclass(frozen=True)
class ArchiveRepository:
    """`root` is spectral's folder for it (the mirror, wal-checked.json)."""

    root: Path
    base_dir: Path
    wal_dir: Path
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

    # ---- the team's WAL folder -------------------------------------------------------------
    def files(self) -> dict[str, Path]:
        """WAL, history and backup history file names (uncompressed) -> the team's file."""
        if "files" not in self._cache:
            found: dict[str, Path] = {}
            for p in sorted(self.wal_dir.iterdir()) if self.wal_dir.is_dir() else []:
                name = p.name[:-len(p.suffix)] if p.suffix in DECOMPRESS else p.name
                if p.is_file() and not name.startswith(".") and not in_flight(p, name):
                    found.setdefault(name, p)
            self._cache["files"] = found
        files: dict[str, Path] = self._cache["files"]
        return files

    def segment_size(self) -> int:
        """From the headers of every plain segment in the team's folder (and of those already
        decompressed into the mirror), else of the newest compressed ones, decompressed."""
        files = self.files()

        def local(name: str) -> Path | None:
            path = files[name] if files[name].name == name else self.archive / name
            return path if path.exists() else None

        def fetch(name: str) -> Path:
            self.unpack(files[name])
            return self.archive / name

        return walsize.remembered(self._cache, lambda: walsize.of_archive(
            files, local, fetch, str(self.wal_dir)))

    def wal_files(self) -> dict[Segment, Path]:
        plain: dict[Segment, Path] = {}
        packed: dict[Segment, Path] = {}
        size = self.segment_size()
        for name, path in self.files().items():
            if name.endswith(HISTORY_SUFFIX):
                self.unpack(path)
            elif (seg := parse_segment(name, size)) is not None:
                if path.name == name:
                    plain[seg] = path.parent
                else:
                    packed[seg] = path
        return DecompressOnRead(self, plain, packed)

    def history_timelines(self) -> list[int]:
        return [t for n in self.files() if (t := history_timeline(n)) is not None]

    def backup_history(self, backup: Backup) -> str | None:
        return None   # its backups keep no pg_wal copy of their history that spectral reads

    def archived(self, segment: str) -> bool:
        self.forget()
        return segment in self.files()

    def text_of(self, path: Path) -> str:
        if path.suffix not in DECOMPRESS:
            return path.read_text(errors="replace")
        return run([DECOMPRESS[path.suffix], "-dc", str(path)], timeout=600).stdout

    def unpack(self, path: Path) -> None:
        """The team's file, uncompressed, into the mirror (once)."""
        name = path.name[:-len(path.suffix)] if path.suffix in DECOMPRESS else path.name
        dest = self.archive / name
        if dest.exists():
            return
        make_owned_dir(self.root, 0o750)
        make_owned_dir(self.archive, 0o750)
        part = self.archive / f".{name}.{time.monotonic_ns()}.part"
        try:
            if path.suffix in DECOMPRESS:
                run([DECOMPRESS[path.suffix], "-dc", str(path)], timeout=600, stdout_path=part)
            else:
                part.write_bytes(path.read_bytes())
            give_to_server(part)
            part.rename(dest)
        except (CommandError, OSError) as exc:
            raise CouldNotVerify(f"WAL file {path.name} in the team's WAL folder cannot be "
                                 f"read: {getattr(exc, 'message', exc)}") from None
        finally:
            with contextlib.suppress(OSError):
                part.unlink()

    # ---- the team's base backups -----------------------------------------------------------
    def backup_histories(self) -> dict[str, str]:
        """The backup history files of the WAL folder, by their START WAL LOCATION."""
        out = {}
        for name, path in self.files().items():
            if name.endswith(".backup"):
                text = self.text_of(path)
                with contextlib.suppress(KeyError, CouldNotVerify):
                    out[lsn_of(label(text)["START WAL LOCATION"])] = text
        return out

    def read(self) -> list[Backup]:
        if "backups" not in self._cache:
            histories = self.backup_histories()
            folders = sorted(self.base_dir.iterdir()) if self.base_dir.is_dir() else []
            found = [b for p in folders if (b := find(p)) is not None]
            self._cache["backups"] = sorted((to_backup(b, histories) for b in found),
                                            key=lambda b: b.stop_time)
        backups: list[Backup] = self._cache["backups"]
        return backups

    def chain(self, backup: Backup) -> list[Backup]:
        return [backup]

    def folder(self, backup_id: str) -> Path:
        b = find(self.base_dir / backup_id)
        if b is None:
            raise CouldNotVerify(f"backup {backup_id} is no longer in {self.base_dir}")
        return b.path
