"""The keys every environment takes, whatever its provider: posture, schemas, targets, the
contract, evidence, exit. Each provider's own keys are its settings model, in its package
(`providers/<name>/settings.py`), a subclass of `EnvironmentConfig` that fixes `provider`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from spectral.config.contract import QUALIFIED, Contract
from spectral.config.drift import DEFAULT_DRIFT, Drift
from spectral.config.durations import parse_duration
from spectral.config.invites import ExitInvites
from spectral.config.secrets import is_secret_ref
from spectral.ledger.settings import AnyEvidence, FileEvidence


class Posture(StrEnum):
    """Posture tiers from the runbook."""

    ALPHA = "alpha"  # pre-customer: recovery is re-seed
    PRO = "pro"      # managed daily backups
    PITR = "pitr"    # point-in-time recovery active


class OnFinding(StrEnum):
    """What a drill makes of a finding that does not prove the copy wrong (collations, drift)."""

    WARN = "warn"    # shown and recorded; the drill passes (exit 0)
    FAIL = "fail"    # the drill fails (exit 1)


# Runbook table "Target | Pre-PITR | Post-PITR": None means "re-seedable" (no restore RPO).
DEFAULT_RPO_SECONDS: dict[Posture, float | None] = {
    Posture.ALPHA: None, Posture.PRO: 24 * 3600.0, Posture.PITR: 120.0,
}
DEFAULT_RTO_SECONDS: dict[Posture, float] = {
    Posture.ALPHA: 3600.0, Posture.PRO: 3600.0, Posture.PITR: 3600.0,
}

# How old the last thorough pg_amcheck of a drill's copy may get (drills/integrity.py)
DEFAULT_AMCHECK_THOROUGH_EVERY: dict[Posture, float] = {
    Posture.ALPHA: 91 * 86400.0, Posture.PRO: 30 * 86400.0, Posture.PITR: 7 * 86400.0,
}

Seconds = Annotated[float, BeforeValidator(parse_duration)]
_IDENT = re.compile(r"^[a-z_][a-z0-9_$]*$")


def check_dsn(value: str | None) -> str | None:
    if value is None or is_secret_ref(value):
        return value
    if re.search(r"://[^/@\s]*:[^/@\s]+@", value) or re.search(r"\bpassword\s*=", value, re.I):
        raise ValueError("a DSN with a password must be a secret reference "
                         "(env:NAME, file:PATH or op://vault/item/field), not a literal")
    return value


def _database(value: str) -> str:
    if not _IDENT.match(value):
        raise ValueError(f"expected a lower-case database name, got {value!r}")
    return value


# The database spectral protects in a cluster it runs (a provider's settings declare it).
DatabaseName = Annotated[str, AfterValidator(_database)]


class EnvironmentConfig(BaseModel):
    """An environment's configuration ([environments.<name>]): the shared keys. The validated
    value is always one provider's settings model (the registry's union on `provider`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def selects(cls, table: Mapping[str, Any]) -> bool:
        """Whether an [environments.<name>] table is for these settings: by default, when its
        `provider` is one this model's Literal allows. A backend sharing a `provider` value
        with another (a team's pgBackRest stanza, `attach = true`) says what tells them
        apart."""
        return table.get("provider") in get_args(cls.model_fields["provider"].annotation)

    provider: str = Field(description="Where the database runs and who keeps its backups; "
                                      "each provider's own keys are listed with it.")
    dsn: str | None = Field(
        default=None,
        description="Connection string, as a secret reference (env:, file:, op://) when it holds "
                    "a password. Empty for a cluster spectral runs itself.")
    posture: Posture = Field(default=Posture.ALPHA, description="Posture tier: alpha, pro or pitr.")
    snapshot_dsn: str | None = Field(
        default=None,
        description="A streaming replica of the database (a secret reference when it holds a "
                    "password): drills, `dr snapshot`, `dr fingerprint` and `dr compare` read "
                    "it instead of the primary, at its replay LSN (the drill's recovery "
                    "target; providers that restore to an LSN only). Its system identifier "
                    "and database must be the primary's.")
    source_read_rate: float = Field(
        default=0, ge=0,
        description="MB/s the content scan of the live database (or of snapshot_dsn) may read, "
                    "summed over its sessions; 0: unlimited (docs/cost.md, what a drill costs "
                    "production).")
    schemas: list[str] = Field(default=["core", "worlds", "platform"],
                               description="The protected schemas the runbook verifies.")
    load_bearing_tables: list[str] = Field(
        default=["core.users", "core.partners", "worlds.returns", "platform.rules"],
        description="Tables whose row counts every drill spot-checks (schema.table).")
    drift: dict[str, Drift] = Field(
        default={}, description="Load-bearing table -> how far its row count may move since the "
                                "previous passing drill before the drill warns: '-5%' a drop "
                                "of more than 5% (growth is fine), '+20%' growth only, '5%' "
                                "either way, 'off'. Tables not named take drift_default.")
    drift_default: Drift = Field(
        default=DEFAULT_DRIFT, description="The drift bound of every load-bearing table that "
                                           "drift does not name ('-10%': a drop of more than a "
                                           "tenth of its rows).")
    on_drift: OnFinding = Field(
        default=OnFinding.WARN,
        description="A load-bearing count beyond its drift bound: warn (the drill still passes, "
                    "exit 0) or fail the drill.")
    on_collation_mismatch: OnFinding = Field(
        default=OnFinding.WARN,
        description="A collation whose library version on the restore host differs from the "
                    "one the source recorded (its text indexes may be silently corrupt until "
                    "REINDEX): warn (the drill still passes, exit 0) or fail the drill.")
    rpo_target: Seconds | None = Field(
        default=None, description="Recovery point objective; default from the posture tier.")
    rto_target: Seconds | None = Field(
        default=None, description="Recovery time objective; default from the posture tier.")
    amcheck_thorough_every: Seconds | None = Field(
        default=None, ge=0,
        description="How old the newest drill that ran pg_amcheck's thorough checks "
                    "(--heapallindexed --parent-check) may be before a drill runs them again "
                    "(0: every drill); default from the posture tier: 91 days alpha, 30 days "
                    "pro, 7 days pitr. `dr drill functional --amcheck` overrides it.")
    state_dir: Path | None = Field(
        default=None, description="Where the tool keeps this environment's cluster, backups and "
                                  "evidence; default .spectral/<environment>.")
    pg_bin_dir: Path | None = Field(
        default=None, description="PostgreSQL 15-18 bin directory; default: the embedded wheel.")
    launch_date: date | None = Field(
        default=None, description="Customer launch date: the floor for activating PITR.")
    partner_data_query: str | None = Field(
        default=None, description="SQL whose rows are the partner data that fires the 'first "
                                  "partner data' trigger; default: partner-owned corpora.")
    lock_timeout: Seconds = Field(
        default=2, gt=0, description="Longest a snapshot or fingerprint of this database waits "
                                     "for a table's lock, and lets a statement of production "
                                     "(a migration's ALTER TABLE) wait behind its own, before it "
                                     "starts again (three attempts, then could-not-verify).")
    change_columns: dict[str, str] = Field(
        default={}, description="schema.table -> the column whose newest value is the table's "
                                "newest change (default: a timestamp column whose default is "
                                "the time of the write, found from the catalog).")
    evidence: AnyEvidence = Field(
        default_factory=FileEvidence, description="Where the ledger and snapshots live "
        "([environments.<name>.evidence]): file (default), git or s3; signing keys.")
    contract: Contract | None = Field(
        default=None, description="What the database must keep after a restore "
                                  "([environments.<name>.contract]); without one the drill "
                                  "reports the contract check as not configured.")
    provision_command: str | None = Field(
        default=None, description="Command run after a failover (in the configuration's "
                                  "folder), e.g. './deploy/provision production'.")
    exit_target: str | None = Field(
        default=None, description="Where the provider-failure playbook moves the protected "
                                  "schemas: another environment's name, or a DSN (a secret "
                                  "reference when it holds a password) of a PostgreSQL "
                                  "elsewhere, connecting as the role that will own them.")
    exit_invites: ExitInvites | None = Field(
        default=None, description="The application's invitation table "
                                  "([environments.<name>.exit_invites]): a proven exit also "
                                  "writes the SQL that invites every identity of its re-invite "
                                  "list again; without it, the list alone.")

    @field_validator("dsn", "snapshot_dsn", "exit_target")
    @classmethod
    def _dsn(cls, value: str | None) -> str | None:
        return check_dsn(value)

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
    def _drift_tables(self) -> EnvironmentConfig:
        unknown = sorted(set(self.drift) - set(self.load_bearing_tables))
        if unknown:
            raise ValueError(f"drift names {', '.join(unknown)}, not among load_bearing_tables "
                             f"(drift is measured on those only)")
        return self

    @property
    def rpo_seconds(self) -> float | None:
        return self.rpo_target if self.rpo_target is not None else DEFAULT_RPO_SECONDS[self.posture]

    @property
    def amcheck_thorough_seconds(self) -> float:
        every = self.amcheck_thorough_every
        return every if every is not None else DEFAULT_AMCHECK_THOROUGH_EVERY[self.posture]

    @property
    def rto_seconds(self) -> float:
        return self.rto_target if self.rto_target is not None else DEFAULT_RTO_SECONDS[self.posture]
