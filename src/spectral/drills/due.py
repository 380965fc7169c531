"""`spectral dr drill due --all [--run]`: the drills every environment's cadence says are due
(a functional drill never passed or older than its cadence, a post-migration drill after a
multi-schema migration), and with `run` each one drilled, one environment after the other: the
one job a schedule needs.

    run = drill_due(load_config(), run=True, on_result=lambda env, result: ...)
    run.exit_code      # the worst: 1 a drill failed or a due one was not run, else 3, else 0

What is due is judged as `dr status --all` judges it (drills/fleet.py), from each environment's
own ledger. A drill runs only where the provider makes its copy without a person
(Capability.UNATTENDED_COPY: a Supabase restore to a new project is clicked by someone, so it
stays due and is named, with the command a person runs). Each drill is recorded in its
environment's ledger as `dr drill functional` records it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from spectral.config.models import SpectralConfig
from spectral.confirm import AssumeYes
from spectral.drills.fleet import environment_row, fleet_status
from spectral.drills.functional import DrillRequest, run_functional
from spectral.drills.result import DrillResult, DrillType
from spectral.environment import Environment
from spectral.errors import ExitCode, SpectralError
from spectral.providers.base import Capability

# the cadence items a drill answers, and the drill that does (a functional drill answers both)
DRILLS = {"Functional restore drill": DrillType.FUNCTIONAL,
          "Post-migration drill": DrillType.POST_MIGRATION}
_RANK = [ExitCode.OK, ExitCode.COULD_NOT_VERIFY, ExitCode.CHECK_FAILED]


class DueAction(StrEnum):
    NOT_DUE = "not_due"
    DUE = "due"                  # listed (without --run)
    DRILLED = "drilled"
    NOT_RUN = "not_run"          # due, but not run here: the reason says why and who can
    COULD_NOT_VERIFY = "could_not_verify"   # its evidence store cannot be read: due unknown


@dataclass(frozen=True)
class DueEnvironment:
    name: str
    due: list[str]               # the cadence items that are due
    action: DueAction
    result: DrillResult | None = None
    reason: str | None = None

    @property
    def exit_code(self) -> ExitCode:
        if self.result is not None:
            return self.result.outcome.exit_code
        if self.action is DueAction.COULD_NOT_VERIFY:
            return ExitCode.COULD_NOT_VERIFY
        return ExitCode.CHECK_FAILED if self.due else ExitCode.OK   # due: still overdue

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "due": self.due, "action": self.action.value,
                "drill": self.result.to_json() if self.result else None,
                "reason": self.reason, "exit_code": int(self.exit_code)}


@dataclass(frozen=True)
class DueRun:
    at: datetime
    ran: bool
    environments: list[DueEnvironment]

    @property
    def exit_code(self) -> ExitCode:
        """The worst of the environments': a definite problem (1) outranks an unknown one."""
        return max((e.exit_code for e in self.environments), key=_RANK.index,
                   default=ExitCode.OK)

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "run": self.ran, "exit_code": int(self.exit_code),
                "environments": [e.to_json() for e in self.environments]}


def due_items(row: dict[str, Any]) -> list[str]:
    """The drills a row of `dr status --all` has overdue."""
    return [i["name"] for i in row["cadence"] if i["name"] in DRILLS and i["state"] == "overdue"]


def drill_due(cfg: SpectralConfig, *, run: bool, now: datetime | None = None,
              report: Callable[[str], None] = lambda _m: None,
              on_result: Callable[[Environment, DrillResult], None] = lambda _e, _r: None
              ) -> DueRun:
    """What is due in every environment; with `run`, each due drill run (in the
    configuration's order), `on_result` told of each result as it comes."""
    fleet = fleet_status(cfg, now, report=report)
    out = []
    for row in fleet.rows:
        environment, due = fleet.environments[row["name"]], due_items(row)
        if row["ledger"] is None:      # its evidence store could not be read (fleet._blank)
            out.append(DueEnvironment(row["name"], due, DueAction.COULD_NOT_VERIFY,
                                      reason=row["error"]))
        elif not due:
            out.append(DueEnvironment(row["name"], due, DueAction.NOT_DUE))
        elif not run:
            out.append(DueEnvironment(row["name"], due, DueAction.DUE))
        else:
            out.append(_drill(environment, due, report, on_result))
    return DueRun(fleet.at, run, out)


def _drill(environment: Environment, due: list[str], report: Callable[[str], None],
           on_result: Callable[[Environment, DrillResult], None]) -> DueEnvironment:
    name = environment.name
    kind = DRILLS[due[0]] if len(due) == 1 else DrillType.FUNCTIONAL
    try:
        if Capability.UNATTENDED_COPY not in environment.provider.capabilities:
            return DueEnvironment(name, due, DueAction.NOT_RUN, reason=(
                f"its copy needs a person: spectral --env {name} dr drill {kind.value}"))
        # judged again under the environment's lock: a run that held it may have drilled
        with environment.provider.busy("drill due --run"):
            if not due_items(environment_row(environment, datetime.now(UTC))):
                return DueEnvironment(name, [], DueAction.NOT_DUE)
            report(f"{name}: {', '.join(due)} due: running a {kind.value} drill")
            result = run_functional(environment, DrillRequest(kind), operator=AssumeYes(),
                                    report=lambda m: report(f"{name}: {m}"))
    except SpectralError as exc:      # refused before anything ran: nothing recorded
        return DueEnvironment(name, due, DueAction.NOT_RUN, reason=exc.message)
    on_result(environment, result)
    return DueEnvironment(name, due, DueAction.DRILLED, result)
