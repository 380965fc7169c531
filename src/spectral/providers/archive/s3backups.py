"""pg_basebackup's outputs in an S3 prefix, one "folder" per backup, listed without
downloading them: the backup_label of a plain backup is an object of its own; a tar backup's is
the first member of base.tar[.gz|.lz4|.zst] (PostgreSQL's basebackup.c sends it first into the
main tablespace's tar, then tablespace_map, then the data directory in readdir order, pg_control
last), read from the first bytes of the object with a ranged GET, decompressed as far as they
go. PG_VERSION has no fixed place in a tar: the major is then the WAL page magic of the
backup's first segment (xlog_internal.h's XLOG_PAGE_MAGIC changes with every major), which the
window reads anyway; the restore checks PG_VERSION again before recovery starts."""

from __future__ import annotations

import json
import re
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spectral.durable import write_atomic
from spectral.errors import CommandError, CouldNotVerify
from spectral.providers.archive.backups import (
    DECOMPRESS,
    SAFE_ID,
    backup_entry,
    label,
)
from spectral.providers.archive.s3 import S3Object, S3Prefixes
from spectral.providers.base import Backup
from spectral.runner import run

# XLOG_PAGE_MAGIC of each released major (src/include/access/xlog_internal.h)
MAJOR_BY_MAGIC = {0xD097: "10", 0xD098: "11", 0xD101: "12", 0xD106: "13", 0xD10D: "14",
                  0xD110: "15", 0xD113: "16", 0xD116: "17", 0xD118: "18"}
FIRST_READS = (256 << 10, 8 << 20)    # a compressed block must be whole to decompress
MANIFEST_TAIL = 64 << 10
END_LSN_RE = re.compile(r'"End-LSN"\s*:\s*"([0-9A-Fa-f]+/[0-9A-Fa-f]+)"')
CACHE_VERSION = 1
TAR_STEMS = tuple(f"base.tar{s}" for s in ("", *DECOMPRESS))


@dataclass(frozen=True)
class S3Backup:
    """One backup "folder" under the base backups prefix: its objects by their name in it."""

    id: str
    objects: dict[str, S3Object]

    @property
    def plain(self) -> bool:
        return "backup_label" in self.objects and "PG_VERSION" in self.objects

    @property
    def tar(self) -> str | None:
        """base.tar[.gz|.lz4|.zst], or None for a plain backup."""
        if self.plain:
            return None
        return next((t for t in TAR_STEMS if t in self.objects), None)

    @property
    def size(self) -> int:
        return sum(o.size for o in self.objects.values())


def group(objects: list[S3Object]) -> list[S3Backup]:
    """The backups of a listing (pure): objects grouped by their first path component, those
    that are not a pg_basebackup output (no backup_label, no base.tar) left out."""
    by_id: dict[str, dict[str, S3Object]] = {}
    for o in objects:
        folder, sep, rest = o.key.partition("/")
        if sep and rest and SAFE_ID.match(folder):
            by_id.setdefault(folder, {})[rest] = o
    found = [S3Backup(i, objs) for i, objs in sorted(by_id.items())]
    return [b for b in found if b.plain or b.tar is not None]


def first_member(data: bytes) -> tuple[str, bytes] | None:
    """The first member of a tar stream's first bytes: its name and content, or None when
    `data` does not reach its end (pure)."""
    if len(data) < tarfile.BLOCKSIZE:
        return None
    try:
        info = tarfile.TarInfo.frombuf(data[:tarfile.BLOCKSIZE], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return None
    end = tarfile.BLOCKSIZE + info.size
    return (info.name, data[tarfile.BLOCKSIZE:end]) if len(data) >= end else None


def decompress_start(data: bytes, suffix: str) -> bytes:
    """What the first bytes of a compressed file decompress to (the program stops at the cut
    with an error, after writing everything before it)."""
    if suffix not in DECOMPRESS:
        return data
    with tempfile.TemporaryDirectory(prefix="spectral-s3-") as tmp:
        part, out = Path(tmp) / f"start{suffix}", Path(tmp) / "out"
        part.write_bytes(data)
        try:
            run([DECOMPRESS[suffix], "-dc", str(part)], timeout=120, check=False,
                stdout_path=out)
        except CommandError as exc:        # not installed: said, not read as no label
            raise CouldNotVerify(f"{DECOMPRESS[suffix]} cannot run: {exc.message}",
                                 hint=f"install {DECOMPRESS[suffix]} on this host") from None
        return out.read_bytes()


def label_from_start(first: Callable[[int], bytes], suffix: str) -> str | None:
    """backup_label from a tar's first bytes (`first(n)`: the first n bytes of the object,
    fewer when it is shorter), read more only when a compressed block was cut; None when the
    tar does not start with one."""
    for n in FIRST_READS:
        data = first(n)
        member = first_member(decompress_start(data, suffix))
        if member is not None:
            return member[1].decode(errors="replace") if member[0] == "backup_label" else None
        if len(data) < n:
            return None
    return None


def major_of_magic(magic: int | None) -> str:
    return MAJOR_BY_MAGIC.get(magic, "?") if magic is not None else "?"


class S3Catalog:
    """The base backups prefix read as the plain archive's catalog. What was read of a backup
    is kept in `cache` (a JSON file in spectral's state directory) under the ETags of the
    objects it came from: a listing reads again only a backup whose objects changed."""

    def __init__(self, s3: S3Prefixes, major_at: Callable[[str], str], cache: Path) -> None:
        """`major_at(segment name)`: the major of the WAL the archive holds for a segment."""
        self.s3, self.major_at, self.cache = s3, major_at, cache

    @property
    def url(self) -> str:
        return self.s3.cfg.base_backups

    def backups(self) -> list[S3Backup]:
        return group(self.s3.objects(self.url))

    def entries(self, found: list[S3Backup], history: dict[str, str]) -> list[Backup]:
        kept = self._cached()
        facts = {b.id: self._facts(b, kept.get(b.id)) for b in found}
        if facts != kept:
            write_atomic(self.cache, json.dumps({"version": CACHE_VERSION, "backups": facts},
                                                indent=1), mode=0o600)
        out = []
        for b in found:
            f, manifest = facts[b.id], b.objects.get("backup_manifest")
            out.append(backup_entry(b.id, str(f["label"]), str(f["version"]), history,
                                    f["manifest_stop"],
                                    manifest.modified.timestamp() if manifest else None,
                                    has_manifest=manifest is not None, size=b.size))
        return out

    def _cached(self) -> dict[str, dict[str, str | None]]:
        try:
            doc = json.loads(self.cache.read_text())
        except (OSError, ValueError):
            return {}
        ok = isinstance(doc, dict) and doc.get("version") == CACHE_VERSION
        return dict(doc.get("backups") or {}) if ok else {}

    def _facts(self, b: S3Backup, kept: dict[str, str | None] | None) -> dict[str, str | None]:
        """backup_label's text, the major and the manifest's end, read from the bucket unless
        `kept` was read from the same objects (and found the major)."""
        etags = "|".join(f"{n}={o.etag}" for n, o in sorted(b.objects.items())
                         if n in ("backup_label", "PG_VERSION", "backup_manifest", b.tar))
        if (kept and kept.get("etags") == etags and isinstance(kept.get("label"), str)
                and isinstance(kept.get("version"), str) and kept.get("version") != "?"):
            return kept
        label_text = self.backup_label(b)
        version = (self.s3.get(self.url, f"{b.id}/PG_VERSION").decode().strip()
                   if b.tar is None else self._wal_major(label_text))
        stop = self._manifest_end(b) if "backup_manifest" in b.objects else None
        return {"etags": etags, "label": label_text, "version": version, "manifest_stop": stop}

    def backup_label(self, b: S3Backup) -> str:
        if b.tar is None:
            return self.s3.get(self.url, f"{b.id}/backup_label").decode(errors="replace")
        tar = b.tar
        found = label_from_start(lambda n: self.s3.get(self.url, f"{b.id}/{tar}", first=n),
                                 tar.removeprefix("base.tar"))
        if found is None:
            raise CouldNotVerify(f"backup {b.id}: {tar} does not start with a backup_label "
                                 f"(pg_basebackup writes it first): not a base backup "
                                 f"spectral can read")
        return found

    def _wal_major(self, label_text: str) -> str:
        where = label(label_text).get("START WAL LOCATION", "")
        file = where.partition("(file ")[2].rstrip(")")
        return self.major_at(file) if file else "?"

    def _manifest_end(self, b: S3Backup) -> str | None:
        """The end of the manifest's last WAL range: from its last bytes (WAL-Ranges come
        last, before the checksum; a manifest has a line per file and can be large), else
        from the whole of it."""
        key = f"{b.id}/backup_manifest"
        tail = self.s3.get(self.url, key, last=MANIFEST_TAIL).decode(errors="replace")
        if '"WAL-Ranges"' in tail:
            return manifest_end_in(tail)
        try:
            ranges = json.loads(self.s3.get(self.url, key)).get("WAL-Ranges") or []
        except (ValueError, AttributeError):
            return None
        return str(ranges[-1]["End-LSN"]) if ranges else None


def manifest_end_in(text: str) -> str | None:
    """The last End-LSN of the WAL-Ranges in (the end of) a backup_manifest (pure)."""
    ends = END_LSN_RE.findall(text[text.rfind('"WAL-Ranges"'):])
    return str(ends[-1]) if ends else None
