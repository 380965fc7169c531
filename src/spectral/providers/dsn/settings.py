"""The settings of a database spectral only connects to: a DSN, no backups it can reach."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from spectral.config.base import EnvironmentConfig


class DsnSettings(EnvironmentConfig):
    provider: Literal["dsn", "local"] = Field(
        description="'dsn': a database spectral only connects to (fingerprints, snapshots, "
                    "compare, exit); it reaches no backups. `provider = \"local\"` with a dsn "
                    "is read as this too.")
    dsn: str = Field(description="Connection string, as a secret reference (env:, file:, "
                                 "op://) when it holds a password.")
