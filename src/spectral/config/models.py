"""The configuration schema. Every field has a description; invalid values are errors."""

from __future__ import annotations

import re
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from spectral.config.contract import QUALIFIED, Contract
from spectral.config.durations import parse_duration
from spectral.config.evidence import EvidenceConfig
from spectral.config.pgbackrest import PgBackRestConfig
from spectral.config.secrets import is_secret_ref


class Posture(StrEnum):
    """Posture tiers from the runbook."""

    ALPHA = "alpha"  # pre-customer: recovery is re-seed
    PRO = "pro"      # managed daily backups
    PITR = "pitr"    # point-in-time recovery active


class ProviderKind(StrEnum):
    LOCAL = "local"
    SUPABASE = "supabase"
    PGBACKREST = "pgbackrest"


# Runbook table "Target | Pre-PITR | Post-PITR": None means "re-seedable" (no restore RPO).
DEFAULT_RPO_SECONDS: dict[Posture, float | None] = {
    Posture.ALPHA: None, Posture.PRO: 24 * 3600.0, Posture.PITR: 120.0,
}
DEFAULT_RTO_SECONDS: dict[Posture, float] = {
    Posture.ALPHA: 3600.0, Posture.PRO: 3600.0, Posture.PITR: 3600.0,
}

Seconds = Annotated[float, BeforeValidator(parse_duration)]
_IDENT = re.compile(r"^[a-z_][a-z0-9_$]*$")


def _check_dsn(value: str | None) -> str | None:
    if value is None or is_secret_ref(value):
        return value
    if re.search(r"://[^/@\s]*:[^/@\s]+@", value) or re.search(r"\bpassword\s*=", value, re.I):
        raise ValueError("a DSN with a password must be a secret reference "
                         "(env:NAME, file:PATH or op://vault/item/field), not a literal")
    return value


class EnvironmentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: ProviderKind = Field(description="Where the database runs and who keeps its backups: "
                                    "'local' (spectral's own repository), 'pgbackrest' (a "
                                    "cluster spectral runs, backed up by pgBackRest) or "
                                    "'supabase'.")
    dsn: str | None = Field(
        default=None,
        description="Connection string, as a secret reference (env:, file:, op://) when it holds "
                    "a password. Empty for a local environment: the tool runs the cluster itself.")
    posture: Posture = Field(default=Posture.ALPHA, description="Posture tier: alpha, pro or pitr.")
    schemas: list[str] = Field(default=["core", "worlds", "platform"],
                               description="The protected schemas the runbook verifies.")
    load_bearing_tables: list[str] = Field(
        default=["core.users", "core.partners", "worlds.returns", "platform.rules"],
        description="Tables whose row counts every drill spot-checks (schema.table).")
    rpo_target: Seconds | None = Field(
        default=None, description="Recovery point objective; default from the posture tier.")
    rto_target: Seconds | None = Field(
        default=None, description="Recovery time objective; default from the posture tier.")
    state_dir: Path | None = Field(
        default=None, description="Where the tool keeps this environment's cluster, backups and "
                                  "evidence; default .spectral/<environment>.")
    pg_bin_dir: Path | None = Field(
        default=None, description="PostgreSQL 15-18 bin directory; default: the embedded wheel.")
    project_ref: str | None = Field(default=None, description="Supabase project ref.")
    access_token: str | None = Field(
        default=None, description="Supabase Management API token, as a secret reference.")
    api_url: str = Field(default="https://api.supabase.com/v1",
                         description="Supabase Management API base URL (an emulator in tests).")
    launch_date: date | None = Field(
        default=None, description="Customer launch date: the floor for activating PITR.")
    partner_data_query: str | None = Field(
        default=None, description="SQL whose rows are the partner data that fires the 'first "
                                  "partner data' trigger; default: partner-owned corpora.")
    database: str = Field(
        default="postgres", description="The database spectral protects in a cluster it runs "
                                        "itself (created on first use); a DSN names its own.")
    lock_timeout: Seconds = Field(
        default=2, gt=0, description="Longest a snapshot or fingerprint of this database waits "
                                     "for a table's lock, and lets a statement of production "
                                     "(a migration's ALTER TABLE) wait behind its own, before it "
                                     "starts again (three attempts, then could-not-verify).")
    change_columns: dict[str, str] = Field(
        default={}, description="schema.table -> the column whose newest value is the table's "
                                "newest change (default: a timestamp column whose default is "
                                "the time of the write, found from the catalog).")
    pgbackrest: PgBackRestConfig | None = Field(
        default=None, description="A pgbackrest environment's stanza and repositories "
                                  "([environments.<name>.pgbackrest]).")
    evidence: EvidenceConfig = Field(
        default_factory=EvidenceConfig, description="Where the ledger and snapshots live "
        "([environments.<name>.evidence]): file (default), git or s3; signing keys.")
    contract: Contract | None = Field(
        default=None, description="What the database must keep after a restore "
                                  "([environments.<name>.contract]); without one the drill "
                                  "reports the contract check as not configured.")
    provision_command: str | None = Field(
        default=None, description="Command run after a failover, e.g. "
                                  "'tools/provision/provision.sh --env production'.")
    exit_target: str | None = Field(
        default=None, description="Where the provider-failure playbook moves the protected "
                                  "schemas: another environment's name, or a DSN (a secret "
                                  "reference when it holds a password) of a PostgreSQL "
                                  "elsewhere, connecting as the role that will own them.")

    @field_validator("dsn", "exit_target")
    @classmethod
    def _dsn(cls, value: str | None) -> str | None:
        return _check_dsn(value)

    @field_validator("access_token")
    @classmethod
    def _token(cls, value: str | None) -> str | None:
        if value is not None and not is_secret_ref(value):
            raise ValueError("must be a secret reference (env:NAME, file:PATH or "
                             "op://vault/item/field), never the token itself")
        return value

    @field_validator("database")
    @classmethod
    def _database(cls, value: str) -> str:
        if not _IDENT.match(value):
            raise ValueError(f"expected a lower-case database name, got {value!r}")
        return value

    @field_validator("schemas")
    @classmethod
    def _schemas(cls, value: list[str]) -> list[str]:
        bad = [s for s in value if not _IDENT.match(s)]
        if bad or not value:
            raise ValueError(f"expected lower-case schema names, got {bad or value}")
        return value

    @field_validator("load_bearing_tables")
    @classmethod
    def _tables(cls, value: list[str]) -> list[str]:
        bad = [t for t in value if not QUALIFIED.match(t)]
        if bad:
            raise ValueError(f"expected schema.table names, got {bad}")
        return value

    @model_validator(mode="after")
    def _provider_fields(self) -> EnvironmentConfig:
        if self.provider is ProviderKind.SUPABASE:
            missing = [k for k in ("project_ref", "access_token", "dsn")
                       if getattr(self, k) is None]
            if missing:
                raise ValueError(f"a supabase environment needs {', '.join(missing)}")
        if self.provider is ProviderKind.PGBACKREST:
            if self.dsn is not None:
                raise ValueError("a pgbackrest environment is a cluster spectral runs; it "
                                 "takes no dsn")
            if self.pgbackrest is None:
                object.__setattr__(self, "pgbackrest", PgBackRestConfig())
        elif self.pgbackrest is not None:
            raise ValueError("[pgbackrest] settings are for provider = 'pgbackrest'")
        return self

    @property
    def rpo_seconds(self) -> float | None:
        return self.rpo_target if self.rpo_target is not None else DEFAULT_RPO_SECONDS[self.posture]

    @property
    def rto_seconds(self) -> float:
        return self.rto_target if self.rto_target is not None else DEFAULT_RTO_SECONDS[self.posture]

    @property
    def managed_cluster(self) -> bool:
        """True when the tool runs this environment's PostgreSQL itself (local or pgbackrest,
        no DSN)."""
        return self.provider in (ProviderKind.LOCAL, ProviderKind.PGBACKREST) and self.dsn is None


class SpectralConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_environment: str | None = Field(
        default=None, description="Environment used when --env is not given; default 'local' "
                                  "when there is one, else the first environment in the file.")
    environments: dict[str, EnvironmentConfig] = Field(
        description="The environments, by name ([environments.<name>]).")
    source: Path | None = Field(default=None, exclude=True,
                                description="The file this configuration was read from.")
    base_dir: Path = Field(default=Path("."), exclude=True,
                           description="Relative paths are resolved against this directory.")

    @model_validator(mode="after")
    def _default_exists(self) -> SpectralConfig:
        if not self.environments:
            raise ValueError("no environments: add an [environments.<name>] table")
        if self.default_environment is None:
            first = "local" if "local" in self.environments else next(iter(self.environments))
            object.__setattr__(self, "default_environment", first)
        elif self.default_environment not in self.environments:
            raise ValueError(f"default_environment {self.default_environment!r} is not one of "
                             f"the environments ({', '.join(sorted(self.environments))})")
        return self

    def environment(self, name: str | None) -> tuple[str, EnvironmentConfig]:
        from spectral.errors import ConfigError

        name = name or self.default_environment or "local"
        if name not in self.environments:
            where = self.source or "the embedded default configuration"
            raise ConfigError(f"unknown environment {name!r} in {where}; known: "
                              f"{', '.join(sorted(self.environments))}")
        return name, self.environments[name]

    def state_dir(self, name: str) -> Path:
        env = self.environments[name]
        path = env.state_dir or Path(".spectral") / name
        return (path if path.is_absolute() else self.base_dir / path).resolve()
