"""What a drill found, as data: outcomes as enums, every check with its evidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from spectral.errors import ExitCode
from spectral.ledger import EntryKind

if TYPE_CHECKING:
    from spectral.providers.base import CopyRecord


class DrillOutcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    COULD_NOT_VERIFY = "could_not_verify"
    NOT_CONFIGURED = "not_configured"   # a check nothing was configured for: never a pass
    # of a check only: the copy is right, but something needs a look (collations, drift); the
    # drill still passes and exits 0 (an environment's on_* keys make such a finding a FAIL)
    WARN = "warn"

    @property
    def exit_code(self) -> ExitCode:
        return {DrillOutcome.PASS: ExitCode.OK, DrillOutcome.FAIL: ExitCode.CHECK_FAILED,
                DrillOutcome.COULD_NOT_VERIFY: ExitCode.COULD_NOT_VERIFY,
                DrillOutcome.NOT_CONFIGURED: ExitCode.OK, DrillOutcome.WARN: ExitCode.OK}[self]


class DrillType(StrEnum):
    FUNCTIONAL = "functional"
    POST_MIGRATION = "post-migration"


@dataclass
class Check:
    name: str
    outcome: DrillOutcome
    detail: str = ""
    evidence: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "outcome": self.outcome.value, "detail": self.detail,
                "evidence": self.evidence}


@dataclass
class DrillResult:
    drill_type: DrillType
    environment: str
    started_at: str
    backup_id: str | None = None
    recovery_target: str | None = None
    snapshot_taken_at: str | None = None
    checks: list[Check] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    rto_target: float | None = None
    rpo_target: float | None = None
    instance: CopyRecord | None = None       # what the ledger keeps of the restored copy
    error: str | None = None
    kept: bool = False
    partner_corpora: list[str] = field(default_factory=list)   # partners whose corpus restored
    rpo_method: str | None = None     # how the RPO was measured (None: it could not be)
    # the source's load-bearing counts at the recovery point: the next drill's drift baseline
    row_counts: dict[str, int | None] = field(default_factory=dict)
    point: dict[str, Any] | None = None   # how the recovery point was chosen (--point random)

    @property
    def outcome(self) -> DrillOutcome:
        if self.error is not None and not self.checks:
            return DrillOutcome.COULD_NOT_VERIFY
        outcomes = [DrillOutcome.PASS if c.outcome is DrillOutcome.WARN else c.outcome
                    for c in self.checks if c.outcome is not DrillOutcome.NOT_CONFIGURED]
        if DrillOutcome.FAIL in outcomes:
            return DrillOutcome.FAIL
        if DrillOutcome.COULD_NOT_VERIFY in outcomes or self.error is not None or not outcomes:
            return DrillOutcome.COULD_NOT_VERIFY
        return DrillOutcome.PASS

    @property
    def warnings(self) -> list[str]:
        """The checks that warned, each as "name: detail"."""
        return [f"{c.name}: {c.detail}" for c in self.checks if c.outcome is DrillOutcome.WARN]

    def to_json(self) -> dict[str, Any]:
        return {"type": self.drill_type.value, "environment": self.environment,
                "outcome": self.outcome.value, "started_at": self.started_at,
                "backup_id": self.backup_id, "recovery_target": self.recovery_target,
                "snapshot_taken_at": self.snapshot_taken_at,
                "checks": [c.to_json() for c in self.checks],
                "timings": {k: round(v, 3) for k, v in self.timings.items()},
                "rto_seconds": None if self.rto_seconds is None else round(self.rto_seconds, 3),
                "rpo_seconds": None if self.rpo_seconds is None else round(self.rpo_seconds, 3),
                "rpo_method": self.rpo_method,
                "rto_target": self.rto_target, "rpo_target": self.rpo_target,
                "instance": self.instance.to_json() if self.instance else None,
                "error": self.error, "kept": self.kept,
                "partner_corpora": self.partner_corpora,
                "warnings": self.warnings, "row_counts": self.row_counts,
                **({"point": self.point} if self.point is not None else {})}


@dataclass(frozen=True)
class DrillEntry:
    """A drill as the ledger keeps it: its result and the kind of provider that made the
    copy (ledger/payloads.py `DrillRecord` reads it back)."""

    KIND: ClassVar[EntryKind] = EntryKind.DRILL
    result: DrillResult
    provider: str

    def to_json(self) -> dict[str, Any]:
        return {**self.result.to_json(), "provider": self.provider}
