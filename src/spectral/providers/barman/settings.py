"""Barman Cloud's settings: the live server, the binaries for throwaway restores, and in
[environments.<name>.barman_cloud] where barman-cloud-backup and barman-cloud-wal-archive put
the team's backups and WAL (an S3 destination and the server name under it), the endpoint, the
keys as secret references, and the folder of the barman-cloud programs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spectral.config.base import EnvironmentConfig
from spectral.config.secrets import reference_only

DESTINATION_RE = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])"
                            r"(?:/(?P<prefix>[^\s]*?))?/?$")
SERVER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ENDPOINT_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$")
DEFAULT_BIN_DIR = Path("/opt/spectral-barman/bin")


class BarmanCloudConfig(BaseModel):
    """[environments.<name>.barman_cloud]: read, never written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    destination: str = Field(description="Where the team's barman-cloud-backup and "
                             "barman-cloud-wal-archive write: 's3://bucket/prefix' (their "
                             "first argument).")
    server_name: str = Field(description="The server name the team gives barman-cloud (its "
                             "second argument): backups and WAL are under "
                             "<destination>/<server_name>/.")
    endpoint_url: str | None = Field(default=None, description="An S3-compatible endpoint "
                                     "('https://host:port'); AWS's own when not given.")
    region: str = Field(default="us-east-1", description="The bucket's region.")
    access_key_id: str | None = Field(default=None, description="The access key id, a secret "
                                      "reference (AWS_ACCESS_KEY_ID of barman-cloud's "
                                      "environment); a read-only key is enough.")
    secret_access_key: str | None = Field(default=None, description="The secret access key, "
                                          "a secret reference.")
    bin_dir: Path = Field(default=DEFAULT_BIN_DIR, description="The folder with "
                          "barman-cloud-backup-list, barman-cloud-restore and "
                          "barman-cloud-wal-restore (barman[cloud] from PyPI in a virtualenv "
                          "the server OS user can execute; docs/attach.md).")

    @field_validator("destination")
    @classmethod
    def _destination(cls, value: str) -> str:
        if not DESTINATION_RE.match(value):
            raise ValueError(f"expected 's3://bucket/prefix', got {value!r}")
        return value.rstrip("/")

    @field_validator("server_name")
    @classmethod
    def _server_name(cls, value: str) -> str:
        if not SERVER_NAME_RE.match(value):
            raise ValueError(f"expected letters, digits, '_', '.' or '-', got {value!r}")
        return value

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

    @field_validator("bin_dir")
    @classmethod
    def _bin_dir(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"expected an absolute path, got {str(value)!r}")
        return value

    @model_validator(mode="after")
    def _keys(self) -> BarmanCloudConfig:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key go together (or neither: "
                             "barman-cloud then finds credentials as boto3 does)")
        return self

    @property
    def bucket(self) -> str:
        m = DESTINATION_RE.match(self.destination)
        assert m is not None
        return m.group("bucket")

    @property
    def prefix(self) -> str:
        """The key prefix of the server's folder: '<prefix>/<server_name>/'."""
        m = DESTINATION_RE.match(self.destination)
        assert m is not None
        inside = (m.group("prefix") or "").strip("/")
        return f"{inside}/{self.server_name}/" if inside else f"{self.server_name}/"


class BarmanCloudSettings(EnvironmentConfig):
    provider: Literal["barman-cloud"] = Field(description="'barman-cloud': backups by "
                                              "barman-cloud-backup and WAL by "
                                              "barman-cloud-wal-archive a team already has, "
                                              "read only.")
    dsn: str = Field(description="The live server (a role with pg_read_all_data and "
                                 "pg_monitor is enough), as a secret reference when it holds "
                                 "a password.")
    pg_bin_dir: Path = Field(description="Binaries of the server's major, for the throwaway "
                                         "restores.")
    barman_cloud: BarmanCloudConfig = Field(description="The team's Barman Cloud destination "
                                            "([environments.<name>.barman_cloud]).")
