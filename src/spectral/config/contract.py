"""The contract a database must keep after a restore: tables that must exist (with named
columns, optionally with row-level security on) and the schemas or tables that must reference
them by validated foreign keys. The reference database's contract is the runbook's core
contract: worlds and platform fail closed without core.orgs, core.users and core.partners."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

QUALIFIED = re.compile(r"^[a-z_][a-z0-9_$]*\.[a-z_][a-z0-9_$]*$")
_NAME = re.compile(r"^[a-z_][a-z0-9_$]*(\.[a-z_][a-z0-9_$]*)?$")


class ContractTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="schema.table that must exist.")
    columns: list[str] = Field(default=[], description="Columns it must have.")
    rls: bool = Field(default=False, description="Row-level security must be enabled on it.")

    @model_validator(mode="before")
    @classmethod
    def _plain_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _qualified(cls, value: str) -> str:
        if not QUALIFIED.match(value):
            raise ValueError(f"expected schema.table, got {value!r}")
        return value


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tables: list[ContractTable] = Field(
        min_length=1, description="Tables that must exist: \"schema.table\" or "
                                  "{ name = \"schema.table\", columns = [...], rls = true }.")
    referenced_by: list[str] = Field(
        default=[], description="Schemas or schema.tables whose foreign keys into the contract "
                                "tables must exist and be validated.")

    @field_validator("referenced_by")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not _NAME.match(v)]
        if bad:
            raise ValueError(f"expected schema or schema.table names, got {bad}")
        return value

    def describe(self) -> str:
        names = ", ".join(t.name for t in self.tables)
        return names + (f"; referenced by {', '.join(self.referenced_by)}"
                        if self.referenced_by else "")


REFERENCE_CONTRACT: dict[str, Any] = {
    "tables": ["core.orgs", "core.users", "core.partners"],
    "referenced_by": ["worlds", "platform"],
}
