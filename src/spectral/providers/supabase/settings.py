"""A Supabase environment's settings: the project, the Management API and its token. The keys
sit directly under [environments.<name>], as they always have."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from spectral.config.base import EnvironmentConfig
from spectral.config.secrets import is_secret_ref


class SupabaseSettings(EnvironmentConfig):
    provider: Literal["supabase"] = Field(description="'supabase': backups, PITR and restores "
                                          "through the Management API.")
    project_ref: str = Field(description="Supabase project ref.")
    access_token: str = Field(description="Supabase Management API token, as a secret "
                                          "reference.")
    api_url: str = Field(default="https://api.supabase.com/v1",
                         description="Supabase Management API base URL (an emulator in tests).")
    dsn: str = Field(description="Connection string of the project's database, as a secret "
                                 "reference (env:, file:, op://) when it holds a password.")

    @model_validator(mode="before")
    @classmethod
    def _complete(cls, value: Any) -> Any:
        if isinstance(value, dict):
            missing = [k for k in ("project_ref", "access_token", "dsn") if value.get(k) is None]
            if missing:
                raise ValueError(f"a supabase environment needs {', '.join(missing)}")
        return value

    @field_validator("access_token")
    @classmethod
    def _token(cls, value: str) -> str:
        if not is_secret_ref(value):
            raise ValueError("must be a secret reference (env:NAME, file:PATH or "
                             "op://vault/item/field), never the token itself")
        return value
