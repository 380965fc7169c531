"""pg_basebackup's output as a team keeps it, one folder per backup, read: plain (a data
directory) or tar (base.tar, plain or gzip/lz4/zstd), with or without a backup_manifest.

Where a backup starts and on which timeline is in its backup_label; where it ends is the last
WAL range of its backup_manifest, or the STOP WAL LOCATION of the backup history file
(`<segment>.<offset>.backup`) the server archived with the WAL. A backup with neither cannot be
placed in the window and is listed as failed, saying so."""

from __future__ import annotations

import contextlib
import functools
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

from spectral.errors import CommandError, CouldNotVerify
from spectral.providers.base import Backup, BackupKind, Verification
from spectral.runner import run

# the program that decompresses a file of each suffix (tar -I runs it with -d)
DECOMPRESS = {".gz": "gzip", ".lz4": "lz4", ".zst": "zstd"}
LABEL_RE = re.compile(r"^(?P<key>[A-Z ]+): (?P<value>.*)$", re.MULTILINE)
LSN_IN_RE = re.compile(r"^([0-9A-F]+/[0-9A-F]+)")
# a folder name as teams write them ("nightly 2026-12-05 02:00", unicode): never a path
# separator or a control character, never a leading dot ("..", hidden folders) or dash
LATEST_OFFSET = timedelta(hours=-12)      # the westernmost: the latest instant a time can be
SAFE_ID = re.compile(r"^[^-./\x00-\x1f\x7f][^/\x00-\x1f\x7f]{0,127}\Z")


@dataclass(frozen=True)
class BaseBackup:
    """One backup folder: plain (`tar` None) or tar (its base.tar[.gz|.lz4|.zst])."""

    id: str
    path: Path
    tar: Path | None
    wal_tar: Path | None

    @property
    def manifest(self) -> Path | None:
        found = self.path / "backup_manifest"
        return found if found.is_file() else None

    def member(self, name: str) -> str:
        """A file of the backup's data directory, as text (read from the tar when tar)."""
        if self.tar is None:
            return (self.path / name).read_text()
        argv = ["tar", "-x", "-O", "-f", str(self.tar)]
        if self.tar.suffix in DECOMPRESS:
            argv.append(f"--use-compress-program={DECOMPRESS[self.tar.suffix]}")
        try:
            return run([*argv, name], timeout=600).stdout
        except CommandError as exc:
            raise CouldNotVerify(f"backup {self.id}: {name} cannot be read from "
                                 f"{self.tar.name}: {exc.message}") from None


def tar_in(folder: Path, stem: str) -> Path | None:
    for suffix in ("", *DECOMPRESS):
        if (folder / f"{stem}.tar{suffix}").is_file():
            return folder / f"{stem}.tar{suffix}"
    return None


def find(folder: Path) -> BaseBackup | None:
    """The backup in `folder`, or None when it holds none (not a pg_basebackup output)."""
    if not SAFE_ID.match(folder.name) or not folder.is_dir():
        return None
    if (folder / "backup_label").is_file() and (folder / "PG_VERSION").is_file():
        return BaseBackup(folder.name, folder, None, None)
    tar = tar_in(folder, "base")
    if tar is None:
        return None
    return BaseBackup(folder.name, folder, tar, tar_in(folder, "pg_wal"))


def label(text: str) -> dict[str, str]:
    """backup_label's (or a backup history file's) lines, key -> value (pure)."""
    return {m.group("key"): m.group("value").strip() for m in LABEL_RE.finditer(text)}


def lsn_of(value: str) -> str:
    m = LSN_IN_RE.match(value)
    if m is None:
        raise CouldNotVerify(f"not a WAL location: {value!r}")
    return m.group(1)


def label_time(value: str) -> datetime:
    """'2026-12-05 11:43:41 EST' (PostgreSQL writes log_timezone's abbreviation) in UTC. An
    abbreviation several offsets share (CST: -06, -05, +08) is read at the latest instant it
    can mean, and one not known here at the latest of all (-12): a backup read as later than
    it is only reaches fewer time targets; read as earlier, it was chosen for a target before
    its own consistency point and restored rows committed after the target (exit 0)."""
    local = datetime.strptime(value[:19], "%Y-%m-%d %H:%M:%S")
    offsets = zone_offsets(value[19:].strip(), local)
    return (local - min(offsets, default=LATEST_OFFSET)).replace(tzinfo=UTC)


def zone_offsets(abbrev: str, local: datetime) -> set[timedelta]:
    """The UTC offsets a time zone abbreviation means at `local` (tz database's zones)."""
    if abbrev in ("UTC", "GMT", "UCT", "Z"):
        return {timedelta(0)}
    found = _offsets(abbrev, local, _named(abbrev, local.year, local.month))
    return found or _offsets(abbrev, local, _zones())


def _offsets(abbrev: str, local: datetime, zones: frozenset[str]) -> set[timedelta]:
    found = set()
    for zone in map(ZoneInfo, sorted(zones)):
        if zone.tzname(local) == abbrev and (off := zone.utcoffset(local)) is not None:
            found.add(off)
    return found


@functools.cache
def _named(abbrev: str, year: int, month: int) -> frozenset[str]:
    """Zones that use `abbrev` in that month (the candidates, read once per month)."""
    days = (datetime(year, month, 1, 12), datetime(year, month, 28, 12))
    return frozenset(name for name in _zones()
                     if any(ZoneInfo(name).tzname(day) == abbrev for day in days))


@functools.cache
def _zones() -> frozenset[str]:
    found = set()
    for name in available_timezones():
        with contextlib.suppress(ValueError, OSError):
            ZoneInfo(name)
            found.add(name)
    return frozenset(found)


def manifest_end(manifest: Path) -> str | None:
    try:
        ranges = json.loads(manifest.read_text()).get("WAL-Ranges") or []
    except (OSError, ValueError):
        return None
    return str(ranges[-1]["End-LSN"]) if ranges else None


def to_backup(b: BaseBackup, history: dict[str, str]) -> Backup:
    """The catalog entry; `history` maps the backup history files of the WAL folder (by their
    START WAL LOCATION) to their text."""
    manifest = b.manifest
    return backup_entry(
        b.id, b.member("backup_label"), b.member("PG_VERSION").strip(), history,
        manifest_end(manifest) if manifest else None,
        manifest.stat().st_mtime if manifest else None, has_manifest=manifest is not None,
        size=_size(b.path))


def backup_entry(backup_id: str, label_text: str, version: str, history: dict[str, str],
                 manifest_stop: str | None, manifest_mtime: float | None, *,
                 has_manifest: bool, size: int) -> Backup:
    """The catalog entry of a backup from what was read of it (pure): its backup_label's text,
    its major, the backup history files by START WAL LOCATION, its manifest's end and file
    time (when it has one) and its size. Shared by the folder and the S3 prefix."""
    found = label(label_text)
    try:
        start = lsn_of(found["START WAL LOCATION"])
        started = label_time(found["START TIME"])
        timeline = int(found.get("START TIMELINE", "1"))
        stop_doc = label(history.get(start, ""))
        stop = manifest_stop or (lsn_of(stop_doc["STOP WAL LOCATION"])
                                 if "STOP WAL LOCATION" in stop_doc else None)
        stopped = stopped_by(stop_doc, manifest_mtime)
    except (KeyError, ValueError, CouldNotVerify) as exc:
        return unreadable(backup_id, version, size, exc)
    if stop is None:
        verification, detail = Verification.FAILED, (
            f"its end is unknown: no backup_manifest, and no backup history file for its start "
            f"({start}) in the WAL archive")
        stop = start
    elif not has_manifest:
        verification, detail = Verification.NOT_VERIFIED, (
            "no backup_manifest: its files cannot be checked before the drill compares the "
            "restored copy")
    else:
        verification, detail = Verification.NOT_VERIFIED, (
            "not checked yet: pg_verifybackup runs on every restore of it")
    return Backup(id=backup_id, kind=BackupKind.FULL, parent=None, start_lsn=start,
                  stop_lsn=stop, start_time=started, stop_time=stopped,
                  timeline=timeline, size_bytes=size,
                  duration_s=max(0.0, (stopped - started).total_seconds()),
                  server_version=version, verification=verification,
                  verification_detail=detail, status="completed", physical=True)


def unreadable(backup_id: str, version: str, size: int, why: Exception) -> Backup:
    """A backup whose backup_label (or backup history file) cannot be read: listed as failed,
    naming what is wrong, so the other backups still restore (pure). Its LSNs and times are
    unknown: the epoch and 0/0 stand in; a failed backup is never in the window."""
    what = f"no {why.args[0]!r} line" if isinstance(why, KeyError) else str(why)
    epoch = datetime.fromtimestamp(0, UTC)
    return Backup(id=backup_id, kind=BackupKind.FULL, parent=None, start_lsn="0/0",
                  stop_lsn="0/0", start_time=epoch, stop_time=epoch, timeline=1,
                  size_bytes=size, duration_s=0.0, server_version=version,
                  verification=Verification.FAILED,
                  verification_detail=f"its backup_label cannot be read: {what}",
                  status="completed", physical=True)


def _stopped_by(b: BaseBackup, stop_doc: dict[str, str]) -> datetime:
    manifest = b.manifest
    return stopped_by(stop_doc, manifest.stat().st_mtime if manifest else None)


def stopped_by(stop_doc: dict[str, str], manifest_mtime: float | None) -> datetime:
    """A time the backup had certainly stopped by: the window takes it as the latest its
    consistency point can be, so it must never be early. The history file's STOP TIME is whole
    seconds, rounded down: the next second. Without one, the manifest's file time (written
    after the stop; in S3 its object's LastModified), a second later; without either, now.
    (Found in CI: the floored STOP TIME let a backup taken after a time target be chosen for
    it, and the copy held a commit made after the target, exit 0.)"""
    if "STOP TIME" in stop_doc:
        return label_time(stop_doc["STOP TIME"]) + timedelta(seconds=1)
    if manifest_mtime is not None:
        return datetime.fromtimestamp(int(manifest_mtime) + 1, UTC)
    return datetime.now(UTC)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
