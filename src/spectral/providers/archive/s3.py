"""The team's S3 prefixes, reached read-only: ListObjectsV2 and GetObject (whole or a byte
range), never anything that writes. The keys are resolved from their secret references once,
when first needed (registered with the redaction layer by `resolve_secret`), and stay in this
process: the restored servers read WAL from spectral's mirror, not from the bucket."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from spectral.config.secrets import resolve_secret
from spectral.errors import ConfigError, CouldNotVerify
from spectral.providers.archive.settings import ArchiveConfig, bucket_and_prefix

BIG = 64 << 20          # an object from this size on is downloaded in parallel parts
CHUNK = 1 << 20


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    etag: str
    modified: datetime


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


class S3Prefixes:
    """The bucket(s) of `base_backups` and `wal`, as the configuration names them."""

    def __init__(self, cfg: ArchiveConfig, base_dir: Path | None) -> None:
        self.cfg, self.base_dir = cfg, base_dir
        self._client: Any = None

    def describe(self) -> str:
        return f"base backups in {self.cfg.base_backups}, WAL in {self.cfg.wal}"

    def client(self) -> Any:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    def _new_client(self) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ConfigError("reading an archive in S3 needs boto3 in spectral's environment",
                              hint="pip install 'spectral[s3]'") from None
        keys: dict[str, str] = {}
        if self.cfg.access_key_id and self.cfg.secret_access_key:
            keys = {"aws_access_key_id": resolve_secret(self.cfg.access_key_id,
                                                        base_dir=self.base_dir),
                    "aws_secret_access_key": resolve_secret(self.cfg.secret_access_key,
                                                            base_dir=self.base_dir)}
        return boto3.client("s3", endpoint_url=self.cfg.endpoint_url,
                            region_name=self.cfg.region, **keys,
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 3}))

    def _failed(self, what: str, exc: Exception) -> CouldNotVerify:
        return CouldNotVerify(f"{what} failed: {last_line(str(exc))}",
                              hint="check archive.endpoint_url and the keys (a key that may "
                                   "list and get the prefixes is enough: docs/attach.md)")

    def objects(self, url: str, *, first_only: bool = False) -> list[S3Object]:
        """Every object under the prefix `url` (at most one with `first_only`); the keys are
        relative to it."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, prefix = bucket_and_prefix(url)
        try:
            pages = self.client().get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix,
                PaginationConfig={"MaxItems": 1} if first_only else {})
            return [S3Object(str(o["Key"])[len(prefix):], int(o["Size"]),
                             str(o.get("ETag", "")), o["LastModified"])
                    for page in pages for o in page.get("Contents", [])]
        except (BotoCoreError, ClientError) as exc:
            raise self._failed(f"listing {url}/", exc) from None

    def get(self, url: str, key: str, *, first: int | None = None,
            last: int | None = None) -> bytes:
        """The object `key` under `url` (its first `first` or last `last` bytes only: a
        ranged GET)."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, prefix = bucket_and_prefix(url)
        extra = ({"Range": f"bytes=0-{first - 1}"} if first else
                 {"Range": f"bytes=-{last}"} if last else {})
        try:
            body = self.client().get_object(Bucket=bucket, Key=prefix + key, **extra)["Body"]
            return bytes(body.read())
        except (BotoCoreError, ClientError) as exc:
            raise self._failed(f"reading {url}/{key}", exc) from None

    def download(self, url: str, key: str, dest: Path, size: int | None = None) -> None:
        """The object `key` under `url` into the file `dest`, streamed: one GET when it is
        smaller than BIG (a plain backup is thousands of small files), else boto3's ranged
        parts in parallel."""
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, prefix = bucket_and_prefix(url)
        try:
            if size is not None and size < BIG:
                body = self.client().get_object(Bucket=bucket, Key=prefix + key)["Body"]
                with open(dest, "wb") as f:
                    for chunk in body.iter_chunks(CHUNK):
                        f.write(chunk)
            else:
                self.client().download_file(bucket, prefix + key, str(dest))
        except (BotoCoreError, ClientError) as exc:
            raise self._failed(f"reading {url}/{key}", exc) from None
