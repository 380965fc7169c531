"""The local provider's settings: a PostgreSQL spectral runs itself, backed up into its own
repository (pg_basebackup, the WAL archive)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from spectral.config.base import DatabaseName, EnvironmentConfig


class LocalSettings(EnvironmentConfig):
    provider: Literal["local"] = Field(description="'local': a PostgreSQL spectral runs "
                                       "itself, backed up into its own repository.")
    database: DatabaseName = Field(
        default="postgres", description="The database spectral protects in the cluster it "
                                        "runs (created on first use).")
