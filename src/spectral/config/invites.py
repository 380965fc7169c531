"""Where an application keeps its invitations ([environments.<name>.exit_invites]): after a
provider exit, the re-invite list is also written as the SQL that issues one invitation per
identity with an e-mail, into this table, when it is among the moved ones."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spectral.config.contract import QUALIFIED

_COLUMN = re.compile(r"^[a-z_][a-z0-9_$]*$")


class ExitInvites(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    table: str = Field(description="The invitation table (schema.table), e.g. "
                                   "\"core.domain_invites\".")
    email: str = Field(default="email", description="Its column that takes the e-mail.")
    values: dict[str, str] = Field(
        default={}, description="Its other columns: column -> SQL expression, which may use "
                                "invitee.id (the identity's id, as text) and invitee.email, "
                                "e.g. { expires_at = \"now() + interval '14 days'\" }.")

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not QUALIFIED.match(value):
            raise ValueError(f"expected schema.table, got {value!r}")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _COLUMN.match(value):
            raise ValueError(f"expected a lower-case column name, got {value!r}")
        return value

    @field_validator("values")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [c for c in value if not _COLUMN.match(c)]
        if bad:
            raise ValueError(f"expected lower-case column names, got {bad}")
        return value
