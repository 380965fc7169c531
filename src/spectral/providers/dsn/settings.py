"""The settings of a database spectral only connects to: a DSN, no backups it can reach."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from spectral.config.base import EnvironmentConfig


class DsnSettings(EnvironmentConfig):
    provider: Literal["dsn", "local"] = Field(
        description="'dsn': a database spectral only connects to (fingerprints, snapshots, "
                    "compare, exit); it reaches no backups. `provider = \"local\"` with a dsn "
                    "is read as this too.")
    dsn: str = Field(description="Connection string, as a secret reference (env:, file:, "
                                 "op://) when it holds a password.")

    @classmethod
    def selects(cls, table: Mapping[str, Any]) -> bool:
        provider = table.get("provider")
        return provider == "dsn" or (provider == "local" and table.get("dsn") is not None)
