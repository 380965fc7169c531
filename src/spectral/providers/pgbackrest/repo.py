"""pgBackRest's repository seen as spectral's: the backups from `pgbackrest info`, the WAL
archive from `pgbackrest repo-ls`, each WAL file fetched with `archive-get` into a local mirror
only when something reads it (the window's tail, find-damage, an xid's commit). The window,
target resolution and WAL reading are then the local provider's, unchanged."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spectral.durable import write_atomic
from spectral.errors import CouldNotVerify
from spectral.pg.osuser import make_owned_dir
from spectral.providers.base import Backup, BackupKind, Verification
from spectral.providers.local import walsize
from spectral.providers.local.repo import backup_chain
from spectral.providers.local.wal import Segment, history_timeline, is_segment_name, parse_segment
from spectral.providers.pgbackrest.command import PgBackRest

# archive/<stanza>/<archive id>/<timeline+log>/<segment>[.partial]-<sha1>[.ext]
WAL_FILE_RE = re.compile(r"^(?P<name>[0-9A-F]{24}(?:\.partial)?)-(?P<sha1>[0-9a-f]{40})"
                         r"(?:\.\w+)?$")
HISTORY_RE = re.compile(r"^(?P<name>[0-9A-F]{8}\.history)$")
CHECKS_VERSION = 1
PREFETCH = 4


class FetchOnRead(dict[Segment, Path]):
    """Segment -> mirror folder; reading an entry fetches the file into the mirror first."""

    def __init__(self, items: Iterable[tuple[Segment, Path]],
                 fetch: Callable[[Segment], None],
                 identity: Callable[[Segment], str | None] = lambda _seg: None) -> None:
        super().__init__(items)
        self._fetch = fetch
        self.identity = identity    # the repository's checksum of a file, without a fetch

    def prefetch(self, segments: list[Segment]) -> None:
        """Fetch what a read is about to need, several archive-get at a time (each is a
        process that mostly waits on the repository or decompresses)."""
        wanted = [s for s in segments if s in self]
        if len(wanted) > 1:
            with ThreadPoolExecutor(PREFETCH) as pool:
                list(pool.map(self._try_fetch, wanted))

    def _try_fetch(self, seg: Segment) -> None:
        """A file that cannot be fetched is not an error here: reading it (`[seg]`) raises
        again, naming it, and a reader that can skip it (the window) does."""
        with contextlib.suppress(CouldNotVerify):
            self._fetch(seg)

    def evict(self, seg: Segment) -> None:
        """Drop the local copy of a file found unreadable (see walread)."""
        name = seg.name + (".partial" if seg.partial else "")
        (super().__getitem__(seg) / name).unlink(missing_ok=True)

    def __getitem__(self, seg: Segment) -> Path:
        folder = super().__getitem__(seg)
        self._fetch(seg)
        return folder


@dataclass(frozen=True)
class PgBackRestRepository:
    """pgBackRest's repository as a `Repository` (local/repo.py): `root` is the mirror folder
    in the state directory that fetched WAL files and the verify results go to."""

    root: Path
    tool: PgBackRest = field(default_factory=lambda: PgBackRest(Path("/dev/null"), "main"),
                             compare=False)
    repos: int = 1
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # (name, stored name) of the mirror's files checked against their SHA-1 by this process
    _current: set[tuple[str, str]] = field(default_factory=set, compare=False, repr=False)

    checked_before_restore = True

    @property
    def archive(self) -> Path:
        return self.root / "wal"

    @property
    def stream(self) -> Path:
        return self.root / "stream"     # never written: pgBackRest archives with archive-push

    @property
    def checks_file(self) -> Path:
        return self.root / "checks.json"

    def forget(self) -> None:
        """After a backup or expiry: read pgBackRest's info and listing again. The first
        forget after `archived` found its segment keeps what it has just read (a flush and the
        window right after it: one info and one repo-ls, not two of each)."""
        if self._cache.pop("fresh", False):
            return
        self._cache.clear()

    # ---- backups ---------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        # one look at the cache: a restore's copy reads it while the plan is made (a flush
        # drops it meanwhile)
        info: dict[str, Any] | None = self._cache.get("info")
        if info is None:
            info = self._cache["info"] = self.tool.info()
        return info

    def read(self) -> list[Backup]:
        info = self.info()
        versions = {d.get("id"): str(d.get("version", "?")) for d in info.get("db", [])}
        checks = self.checks()
        out = []
        for b in info.get("backup", []):
            out.append(backup_from_info(b, versions, checks.get(b["label"])))
        return sorted(out, key=lambda b: b.stop_time)

    def repo_of(self, label: str) -> int:
        for b in self.info().get("backup", []):
            if b.get("label") == label:
                return int(b.get("database", {}).get("repo-key", 1))
        return 1

    def chain(self, backup: Backup) -> list[Backup]:
        return backup_chain(self.read(), backup)

    # ---- what `pgbackrest verify` found ----------------------------------------------------
    def checks(self) -> dict[str, dict[str, str]]:
        try:
            doc = json.loads(self.checks_file.read_text())
        except (OSError, ValueError):
            return {}
        if doc.get("version") != CHECKS_VERSION:
            return {}
        checks: dict[str, dict[str, str]] = doc.get("backups", {})
        return checks

    def record_checks(self, results: dict[str, tuple[Verification, str]]) -> None:
        make_owned_dir(self.root, 0o750)
        doc = {"version": CHECKS_VERSION, "backups": {
            **self.checks(), **{label: {"verification": v.value, "detail": d,
                                        "at": datetime.now(UTC).isoformat(timespec="seconds")}
                                for label, (v, d) in results.items()}}}
        write_atomic(self.checks_file, json.dumps(doc, indent=1) + "\n")

    # ---- the WAL archive -------------------------------------------------------------------
    def listing(self) -> dict[str, str]:
        """WAL and history file names in the current archive of every repository -> the name
        pgBackRest stores it under."""
        found: dict[str, str] | None = self._cache.get("listing")    # one look (see info)
        if found is not None:
            return found
        found = {}
        for listed in self._archive_listings():
            for key, entry in listed.items():
                if entry.get("type") != "file":
                    continue
                base = key.rsplit("/", 1)[-1]
                m = WAL_FILE_RE.match(base) or HISTORY_RE.match(base)
                if m:
                    found.setdefault(m.group("name"), key)
        self._cache["listing"] = found
        return found

    @property
    def _archive_id_file(self) -> Path:
        return self.root / "archive-id"

    def _current_archive_id(self) -> str | None:
        archive_ids = [a["id"] for a in self.info().get("archive", [])]
        return str(archive_ids[-1]) if archive_ids else None

    def _archive_listings(self) -> list[dict[str, Any]]:
        """`repo-ls` of the current archive in every repository. pgbackrest info names it;
        the one it named last time (it changes only with a stanza-upgrade) is listed at the
        same time as info runs, each a process of its own, and listed again if info now names
        another."""
        remembered = None
        with contextlib.suppress(OSError):
            remembered = self._archive_id_file.read_text().strip() or None
        guess = remembered if "info" not in self._cache else None
        if guess is None:
            current = self._current_archive_id()
            listings = self._list_archive(current) if current else []
        else:
            with ThreadPoolExecutor(1) as pool:
                info = pool.submit(self.tool.info)
                early = self._list_archive(guess, check=False)
                self._cache["info"] = info.result()
            current = self._current_archive_id()
            listings = [x for x in early if x is not None] if current == guess and \
                None not in early else self._list_archive(current) if current else []
        if current is not None and current != remembered:
            make_owned_dir(self.root, 0o750)
            write_atomic(self._archive_id_file, current + "\n")
        return listings

    def _list_archive(self, archive_id: str, check: bool = True) -> list[Any]:
        """The listing of `archive/<stanza>/<archive_id>` in each repository, at the same time;
        without `check`, None for one that could not be listed."""
        def one(repo: int) -> dict[str, Any] | None:
            try:
                return self.tool.repo_ls(f"archive/{self.tool.stanza}/{archive_id}", repo)
            except CouldNotVerify:
                if check:
                    raise
                return None

        with ThreadPoolExecutor(self.repos) as pool:
            return list(pool.map(one, range(1, self.repos + 1)))

    def segment_size(self) -> int:
        """From the headers of the segments already in the mirror, else of the newest ones,
        fetched with archive-get (walsize.py)."""
        return walsize.remembered(self._cache, lambda: walsize.of_archive(
            self.listing(), self._mirrored, self._fetched,
            f"the pgBackRest stanza {self.tool.stanza}"))

    def _mirrored(self, name: str) -> Path | None:
        return p if (p := self.archive / name).exists() else None

    def _fetched(self, name: str) -> Path:
        if not (self.archive / name).exists():
            self._get(name)
        return self.archive / name

    def wal_files(self) -> dict[Segment, Path]:
        listed, size = self.listing(), self.segment_size()
        self._fetch_histories(listed)
        items = [(seg, self.archive) for name in listed
                 if (seg := parse_segment(name, size)) is not None]
        return FetchOnRead(items, self._fetch, self._identity)

    def _identity(self, seg: Segment) -> str | None:
        """The file's name and the SHA-1 pgBackRest stored it under (walcommits.py)."""
        name = seg.name + (".partial" if seg.partial else "")
        m = WAL_FILE_RE.match(self.listing().get(name, "").rsplit("/", 1)[-1])
        return f"{name}:sha1:{m.group('sha1')}" if m else None

    def history_timelines(self) -> list[int]:
        return [t for n in self.listing() if (t := history_timeline(n)) is not None]

    def backup_history(self, backup: Backup) -> str | None:
        return None   # its backups keep no pg_wal copy of their history that spectral reads

    def archived(self, segment: str) -> bool:
        self._cache.pop("listing", None)
        self._cache.pop("info", None)
        self._cache.pop("fresh", None)
        found = segment in self.listing()
        if found:
            self._cache["fresh"] = True
        return found

    def _fetch_histories(self, listed: dict[str, str]) -> None:
        for name in listed:
            if name.endswith(".history") and not (self.archive / name).exists():
                self._get(name)

    def _fetch(self, seg: Segment) -> None:
        name = seg.name + (".partial" if seg.partial else "")
        if not (self.archive / name).exists():
            self._get(name)
        else:
            self._still_current(name)

    def _still_current(self, name: str) -> None:
        """A file fetched by an earlier command is read only if it is still what the
        repository holds under that name (a segment pushed again with other content is
        fetched again): compared with its recorded SHA-1 once per process."""
        stored = self.listing().get(name, "")
        if (name, stored) in self._current:
            return
        try:
            self._check_sum(name, self.archive / name)
        except CouldNotVerify:
            (self.archive / name).unlink(missing_ok=True)
            self._get(name)
        self._current.add((name, stored))

    def _get(self, name: str) -> None:
        make_owned_dir(self.root, 0o750)
        make_owned_dir(self.archive, 0o750)
        part = self.archive / f".{name}.{time.monotonic_ns()}.part"
        try:
            if not self.tool.archive_get(name, part):
                raise CouldNotVerify(f"WAL file {name} is listed in the pgBackRest archive but "
                                     f"archive-get cannot fetch it")
            self._check_sum(name, part)
            part.rename(self.archive / name)
            self._current.add((name, self.listing().get(name, "")))
        finally:
            part.unlink(missing_ok=True)

    def _check_sum(self, name: str, path: Path) -> None:
        """A WAL file is stored under its SHA-1 (of the file as PostgreSQL wrote it); archive-get
        does not compare it (an uncompressed file is handed over as it is), so it is compared
        here, and a damaged file never enters the mirror."""
        m = WAL_FILE_RE.match(self.listing().get(name, "").rsplit("/", 1)[-1])
        if m is None:
            return
        digest = hashlib.sha1()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != m.group("sha1"):
            raise CouldNotVerify(f"WAL file {name} in the pgBackRest repository does not match "
                                 f"the SHA-1 pgBackRest recorded for it: damaged")

    def prune_mirror(self, keep: set[str]) -> None:
        """Drop fetched segments that are no longer in the archive (after expiry)."""
        if not self.archive.is_dir():
            return
        for p in self.archive.iterdir():
            if is_segment_name(p.name) and p.name not in keep:
                p.unlink(missing_ok=True)


def backup_from_info(b: dict[str, Any], versions: dict[Any, str],
                     check: dict[str, str] | None) -> Backup:
    """One entry of `pgbackrest info --output=json`'s backup list (pure; unit-tested)."""
    start = datetime.fromtimestamp(int(b["timestamp"]["start"]), UTC)
    # whole seconds, rounded down: the backup is consistent somewhere in the second after, so
    # the window starts at the next whole second (a target inside that second is refused,
    # never restored to a later state than asked)
    stop = datetime.fromtimestamp(int(b["timestamp"]["stop"]) + 1, UTC)
    archive_start = (b.get("archive") or {}).get("start") or "00000001"
    info = b.get("info") or {}
    if b.get("error"):
        verification, detail = Verification.FAILED, "pgBackRest found page checksum errors " \
            "while taking it"
    elif check is not None:
        verification, detail = Verification(check["verification"]), check.get("detail", "")
    else:
        verification, detail = Verification.NOT_VERIFIED, "not checked yet: pgbackrest verify " \
            "runs before it is restored"
    kind = BackupKind.FULL if b.get("type") == "full" else BackupKind.INCREMENTAL
    return Backup(
        id=b["label"], kind=kind, parent=b.get("prior"),
        start_lsn=b["lsn"]["start"], stop_lsn=b["lsn"]["stop"], start_time=start,
        stop_time=stop, timeline=int(archive_start[:8], 16),
        size_bytes=int((info.get("repository") or {}).get("delta") or info.get("size") or 0),
        duration_s=float((stop - start).total_seconds()),
        server_version=versions.get((b.get("database") or {}).get("id"), "?"),
        verification=verification, verification_detail=detail,
        status="completed", physical=True)
