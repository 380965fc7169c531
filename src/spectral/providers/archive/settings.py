"""A plain archive's settings: the live server, the binaries for throwaway restores, and in
[environments.<name>.archive] where the base backups and the WAL are: two local folders, or two
S3 prefixes ("s3://bucket/prefix/base") with the endpoint and the keys as secret references."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spectral.config.base import EnvironmentConfig
from spectral.config.secrets import reference_only

S3_RE = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])"
                   r"(?:/(?P<prefix>[^\s]*?))?/?$")
ENDPOINT_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$")
S3_ONLY = ("endpoint_url", "access_key_id", "secret_access_key")


def _location(value: str) -> str:
    if value.startswith("s3://"):
        if not S3_RE.match(value):
            raise ValueError(f"expected 's3://bucket/prefix', got {value!r}")
        return value.rstrip("/")
    if not value.startswith("/") or "\n" in value:
        raise ValueError(f"expected an absolute path or 's3://bucket/prefix', got {value!r}")
    return value


def bucket_and_prefix(url: str) -> tuple[str, str]:
    """'s3://bucket/a/b' -> ('bucket', 'a/b/'): the key prefix of the objects under it."""
    m = S3_RE.match(url)
    assert m is not None
    inside = (m.group("prefix") or "").strip("/")
    return m.group("bucket"), f"{inside}/" if inside else ""


class ArchiveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_backups: str = Field(description="The folder (or 's3://bucket/prefix') with one "
                              "pg_basebackup output per subfolder (plain or tar, "
                              "gzip/lz4/zstd, with or without a backup_manifest): read, never "
                              "written.")
    wal: str = Field(description="The folder (or 's3://bucket/prefix') the team's "
                     "archive_command fills (plain or gzip/lz4/zstd-compressed segments): "
                     "read, never written.")
    endpoint_url: str | None = Field(default=None, description="With S3 prefixes: an "
                                     "S3-compatible endpoint ('https://host:port'); AWS's own "
                                     "when not given.")
    region: str = Field(default="us-east-1", description="With S3 prefixes: the bucket's "
                        "region.")
    access_key_id: str | None = Field(default=None, description="With S3 prefixes: the "
                                      "access key id, a secret reference; a key that may only "
                                      "list and get is enough (docs/attach.md).")
    secret_access_key: str | None = Field(default=None, description="With S3 prefixes: the "
                                          "secret access key, a secret reference.")

    @field_validator("base_backups", "wal")
    @classmethod
    def _path(cls, value: str) -> str:
        return _location(value)

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not ENDPOINT_RE.match(value):
            raise ValueError(f"expected 'https://host[:port]' (or http:// for a test "
                             f"endpoint), got {value!r}")
        return value

    @field_validator("access_key_id", "secret_access_key")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return reference_only(value)

    @model_validator(mode="after")
    def _one_kind(self) -> ArchiveConfig:
        kinds = {self.base_backups.startswith("s3://"), self.wal.startswith("s3://")}
        if len(kinds) > 1:
            raise ValueError("base_backups and wal are both local folders or both S3 prefixes")
        if not self.in_s3 and (given := [k for k in S3_ONLY if getattr(self, k) is not None]):
            raise ValueError(f"{', '.join(given)}: only for S3 prefixes (base_backups and wal "
                             f"are local folders)")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together (or neither: "
                             "the keys are then found as boto3 finds them)")
        return self

    @property
    def in_s3(self) -> bool:
        return self.wal.startswith("s3://")

    @property
    def base_dir(self) -> Path:
        return Path(self.base_backups)

    @property
    def wal_dir(self) -> Path:
        return Path(self.wal)


class ArchiveSettings(EnvironmentConfig):
    provider: Literal["archive"] = Field(description="'archive': base backups by pg_basebackup "
                                         "and a WAL archive a team already has, read only.")
    dsn: str = Field(description="The live server (a role with pg_read_all_data and "
                                 "pg_monitor is enough), as a secret reference when it holds "
                                 "a password.")
    pg_bin_dir: Path = Field(description="Binaries of the server's major, for the throwaway "
                                         "restores.")
    archive: ArchiveConfig = Field(description="The base backups and WAL, local folders or "
                                               "S3 prefixes ([environments.<name>.archive]).")
