"""A plain archive's settings: the live server, the binaries for throwaway restores, and in
[environments.<name>.archive] the folder of base backups and the WAL folder."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spectral.config.base import EnvironmentConfig


def _folder(value: str) -> str:
    if value.startswith("s3://"):
        raise ValueError("an S3 prefix is not read yet (issue 30 lands it next); give a local "
                         "folder")
    if not value.startswith("/") or "\n" in value:
        raise ValueError(f"expected an absolute path, got {value!r}")
    return value


class ArchiveConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    base_backups: str = Field(description="The folder with one pg_basebackup output per "
                              "subfolder (plain or tar, gzip/lz4/zstd, with or without a "
                              "backup_manifest): read, never written.")
    wal: str = Field(description="The folder the team's archive_command fills (plain or "
                     "gzip/lz4/zstd-compressed segments): read, never written.")

    @field_validator("base_backups", "wal")
    @classmethod
    def _path(cls, value: str) -> str:
        return _folder(value)

    @property
    def base_dir(self) -> Path:
        return Path(self.base_backups)

    @property
    def wal_dir(self) -> Path:
        return Path(self.wal)


class ArchiveSettings(EnvironmentConfig):
    provider: Literal["archive"] = Field(description="'archive': base backups by pg_basebackup "
                                         "and a WAL folder a team already has, read only.")
    dsn: str = Field(description="The live server (a role with pg_read_all_data and "
                                 "pg_monitor is enough), as a secret reference when it holds "
                                 "a password.")
    pg_bin_dir: Path = Field(description="Binaries of the server's major, for the throwaway "
                                         "restores.")
    archive: ArchiveConfig = Field(description="The base backups and WAL folders "
                                               "([environments.<name>.archive]).")
