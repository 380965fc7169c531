"""`spectral dr playbook run NAME`: the runbook's playbook for the environment's posture tier as
steps. Automated steps run through the provider; manual steps are shown and confirmed. Each
step's start, end, outcome and the operator go into one incident entry in the ledger.
`--dry-run` prints the plan with the concrete targets and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from spectral.confirm import Confirmer
from spectral.errors import RefusedError, SpectralError
from spectral.ledger import EntryKind
from spectral.playbooks.plan import Plan, Step
from spectral.providers.base import Report


class StepOutcome(StrEnum):
    PLANNED = "planned"
    CONFIRMED = "confirmed"
    DONE = "done"
    NOT_CONFIRMED = "not confirmed"
    FAILED = "failed"


class RunOutcome(StrEnum):
    DONE = "done"
    PLANNED = "planned"     # a dry run: nothing changed
    STOPPED = "stopped"     # a step was not confirmed
    FAILED = "failed"


@dataclass
class StepRecord:
    number: int
    text: str
    automated: bool
    outcome: StepOutcome
    detail: str
    started_at: str
    ended_at: str

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "outcome": self.outcome.value}


@dataclass
class PlaybookRun:
    """A playbook's run; a real one is an incident entry (`IncidentRecord` reads it back)."""

    KIND: ClassVar[EntryKind] = EntryKind.INCIDENT
    playbook: str
    environment: str
    posture: str
    operator: str
    dry_run: bool
    steps: list[StepRecord] = field(default_factory=list)
    outcome: RunOutcome = RunOutcome.DONE

    def to_json(self) -> dict[str, Any]:
        return {"playbook": self.playbook, "environment": self.environment,
                "posture": self.posture, "operator": self.operator, "dry_run": self.dry_run,
                "outcome": self.outcome.value, "steps": [s.to_json() for s in self.steps],
                "summary": f"playbook {self.playbook}: {self.outcome.value}"}


def run_playbook(plan: Plan, name: str, *, dry_run: bool, report: Report) -> PlaybookRun:
    """Run (or, with `dry_run`, plan) every step in order, stopping at the first that fails
    or is not confirmed; a real run is one incident entry in the ledger."""
    environment = plan.environment
    result = PlaybookRun(name, environment.name, environment.config.posture.value,
                         plan.opts.operator, dry_run)
    steps = plan.steps(name)
    for number, step in enumerate(steps, start=1):
        started = datetime.now(UTC).isoformat(timespec="seconds")
        kind = "automated" if step.automated else "manual"
        planned = step.planned() if dry_run or not callable(step.plan) else ""
        report(f"step {number}/{len(steps)} ({kind}): {step.text}"
               + (f" -> {planned}" if planned else ""))
        outcome, detail = (StepOutcome.PLANNED, planned) if dry_run else \
            _perform(step, number, plan.confirmer)
        result.steps.append(StepRecord(number, step.text, step.automated, outcome, detail,
                                       started, datetime.now(UTC).isoformat(timespec="seconds")))
        if detail:
            report(f"    {outcome.value}: {detail}")
        if outcome is StepOutcome.NOT_CONFIRMED:
            result.outcome = RunOutcome.STOPPED
            break
        if outcome is StepOutcome.FAILED:
            result.outcome = RunOutcome.FAILED
            break
    if dry_run:
        result.outcome = RunOutcome.PLANNED
    else:
        environment.ledger.record(environment.name, result)
    return result


def _perform(step: Step, number: int, confirmer: Confirmer) -> tuple[StepOutcome, str]:
    if not step.automated:
        if not confirmer.confirm(f"Step {number} done: {step.text}?", []):
            return StepOutcome.NOT_CONFIRMED, "stopped here"
        return StepOutcome.CONFIRMED, ""
    assert step.action is not None
    try:
        return StepOutcome.DONE, step.action()
    except RefusedError as exc:
        return StepOutcome.NOT_CONFIRMED, exc.message
    except SpectralError as exc:
        return StepOutcome.FAILED, exc.message


def require_yes(confirmer: Confirmer, name: str) -> None:
    if not confirmer.confirm(f"Run the {name} playbook? Automated steps change the database.",
                             []):
        raise RefusedError(f"playbook {name} not confirmed; nothing was changed")
