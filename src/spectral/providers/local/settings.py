"""The local provider's settings: a PostgreSQL spectral runs itself, backed up into its own
repository (pg_basebackup, the WAL archive)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from spectral.config.base import DatabaseName, EnvironmentConfig


class LocalSettings(EnvironmentConfig):
    provider: Literal["local"] = Field(description="'local': a PostgreSQL spectral runs "
                                       "itself, backed up into its own repository.")
    database: DatabaseName = Field(
        default="postgres", description="The database spectral protects in the cluster it "
                                        "runs (created on first use).")

    @classmethod
    def selects(cls, table: Mapping[str, Any]) -> bool:
        """`local` with a dsn names a database spectral does not run (the dsn backend)."""
        return table.get("provider") == "local" and table.get("dsn") is None
