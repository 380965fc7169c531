"""A pgBackRest environment's settings: a cluster spectral runs, and in
[environments.<name>.pgbackrest] the stanza and its repositories. Secrets are references;
spectral passes them to pgBackRest in its environment (PGBACKREST_REPO<n>_S3_KEY,
..._KEY_SECRET), never in its configuration file.

Option names follow pgBackRest's own (https://pgbackrest.org/configuration.html)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spectral.config.base import DatabaseName, EnvironmentConfig
from spectral.config.secrets import reference_only

_STANZA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_HOST = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


class RepoType(StrEnum):
    POSIX = "posix"
    S3 = "s3"


class UriStyle(StrEnum):
    HOST = "host"
    PATH = "path"


class PgBackRestRepo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: RepoType = Field(default=RepoType.POSIX, description="'posix' (a directory) or 's3'.")
    path: str | None = Field(default=None, description="posix: the repository directory "
                             "(default <state_dir>/pgbackrest/repo); s3: the path inside the "
                             "bucket (default /pgbackrest).")
    s3_endpoint: str | None = Field(default=None, description="s3: the endpoint host, "
                                    "optionally with :port (e.g. s3.eu-west-1.amazonaws.com).")
    s3_bucket: str | None = Field(default=None, description="s3: the bucket.")
    s3_region: str = Field(default="us-east-1", description="s3: the region.")
    s3_uri_style: UriStyle = Field(default=UriStyle.HOST, description="s3: 'host' (AWS) or "
                                   "'path' (most S3-compatible servers).")
    s3_key: str | None = Field(default=None, description="s3: the access key id, a secret "
                               "reference.")
    s3_key_secret: str | None = Field(default=None, description="s3: the secret access key, "
                                      "a secret reference.")
    s3_verify_tls: bool = Field(default=True, description="s3: verify the endpoint's TLS "
                                "certificate (off only for a test endpoint).")
    s3_ca_file: Path | None = Field(default=None, description="s3: a CA bundle to verify the "
                                    "endpoint with (a private CA or a test certificate).")

    @field_validator("s3_key", "s3_key_secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return reference_only(value)

    @field_validator("s3_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not _HOST.match(value):
            raise ValueError(f"expected a host name with an optional :port (no scheme: "
                             f"pgBackRest speaks HTTPS only), got {value!r}")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or "\n" in value):
            raise ValueError(f"expected an absolute path, got {value!r}")
        return value

    @model_validator(mode="after")
    def _complete(self) -> PgBackRestRepo:
        if self.type is RepoType.S3:
            missing = [k for k in ("s3_endpoint", "s3_bucket", "s3_key", "s3_key_secret")
                       if getattr(self, k) is None]
            if missing:
                raise ValueError(f"an s3 repository needs {', '.join(missing)}")
        elif any(getattr(self, k) is not None for k in ("s3_endpoint", "s3_bucket", "s3_key",
                                                         "s3_key_secret")):
            raise ValueError("s3_* settings are for an s3 repository (type = 's3')")
        return self


class PgBackRestConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stanza: str = Field(default="main", description="The stanza: pgBackRest's name for this "
                        "cluster's backups and archive.")
    repositories: list[PgBackRestRepo] = Field(
        default_factory=lambda: [PgBackRestRepo()],
        description="repo1, repo2, ...: WAL is pushed to every one; backups go to repo1 "
                    "unless `dr backup --repo N`; a restore reads the repository that holds "
                    "the backup it starts from.")
    process_max: int = Field(default=1, ge=1, le=64, description="Processes for backup and "
                             "restore (pgBackRest's process-max; --process-max overrides).")
    compress_type: str = Field(default="lz4", description="gz, lz4, zst, bz2 or none.")
    retention_full: int = Field(default=9999999, ge=1, description="Full backups pgBackRest "
                                "keeps after each backup (repo-retention-full); the default "
                                "keeps them all and leaves expiry to `spectral dr expire`.")

    @field_validator("stanza")
    @classmethod
    def _stanza(cls, value: str) -> str:
        if not _STANZA.match(value):
            raise ValueError(f"expected letters, digits, '_', '.' or '-', got {value!r}")
        return value

    @field_validator("compress_type")
    @classmethod
    def _compress(cls, value: str) -> str:
        if value not in {"gz", "lz4", "zst", "bz2", "none"}:
            raise ValueError(f"expected gz, lz4, zst, bz2 or none, got {value!r}")
        return value

    @field_validator("repositories")
    @classmethod
    def _repos(cls, value: list[PgBackRestRepo]) -> list[PgBackRestRepo]:
        if not 1 <= len(value) <= 4:
            raise ValueError("pgBackRest takes one to four repositories")
        return value


class PgBackRestSettings(EnvironmentConfig):
    provider: Literal["pgbackrest"] = Field(description="'pgbackrest': a PostgreSQL spectral "
                                            "runs itself, backed up by pgBackRest.")
    database: DatabaseName = Field(
        default="postgres", description="The database spectral protects in the cluster it "
                                        "runs (created on first use).")
    pgbackrest: PgBackRestConfig = Field(
        default_factory=PgBackRestConfig, description="The stanza and its repositories "
        "([environments.<name>.pgbackrest]).")

    @classmethod
    def selects(cls, table: Mapping[str, Any]) -> bool:
        """A cluster spectral runs: not a team's own stanza (`attach = true`)."""
        section = table.get("pgbackrest")
        attach = section.get("attach") if isinstance(section, Mapping) else None
        return table.get("provider") == "pgbackrest" and attach is not True

    @model_validator(mode="after")
    def _no_dsn(self) -> PgBackRestSettings:
        if self.dsn is not None:
            raise ValueError("a pgbackrest environment is a cluster spectral runs; it takes no "
                             "dsn")
        return self


class AttachConfig(BaseModel):
    """[environments.<name>.pgbackrest] of a team's own stanza: read, never written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attach: Literal[True] = Field(description="true: the stanza is the team's own; spectral "
                                  "only reads it (docs/attach.md).")
    stanza: str = Field(description="The team's stanza.")
    config: Path = Field(default=Path("/etc/pgbackrest/pgbackrest.conf"),
                         description="The team's pgbackrest.conf: read, never written (its "
                                     "repositories and their credentials).")

    @field_validator("stanza")
    @classmethod
    def _stanza(cls, value: str) -> str:
        return PgBackRestConfig._stanza(value)

    @field_validator("config")
    @classmethod
    def _config(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"expected an absolute path, got {str(value)!r}")
        return value


class AttachedPgBackRestSettings(EnvironmentConfig):
    provider: Literal["pgbackrest"] = Field(description="'pgbackrest' with attach = true: a "
                                            "team's own stanza, read only.")
    dsn: str = Field(description="The live server (a role with pg_read_all_data and "
                                 "pg_monitor is enough), as a secret reference when it holds "
                                 "a password.")
    pg_bin_dir: Path = Field(description="Binaries of the server's major, for the throwaway "
                                         "restores.")
    pgbackrest: AttachConfig = Field(description="The team's stanza and configuration file.")

    @classmethod
    def selects(cls, table: Mapping[str, Any]) -> bool:
        section = table.get("pgbackrest")
        return (table.get("provider") == "pgbackrest" and isinstance(section, Mapping)
                and section.get("attach") is True)
