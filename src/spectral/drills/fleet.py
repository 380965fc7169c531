"""`spectral dr status --all`: every environment of the configuration in one view, each judged
from its own evidence store and its own provider.

    from spectral.config.load import load_config
    from spectral.drills.fleet import fleet_status

    fleet = fleet_status(load_config())
    fleet.exit_code     # 1 overdue or failed anywhere, else 3 could-not-verify anywhere, else 0

A row is what `dr status --json` gives for its environment plus `name`, `reachable`, `error`,
`window` (the recoverable window) and `state`. A provider that cannot be reached (an API that
refuses, a DSN that does not connect) makes its row could-not-verify: what its ledger says
(the cadence, the last drill, the ledger's integrity) is still shown and still counts, and the
other rows are never hidden. Precedence of the exit code: a definite problem (overdue, failed)
outranks an unknown one, so 1 wins over 3 (the on-call person acts on 1 either way)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from spectral.config.models import SpectralConfig
from spectral.drills import status as status_mod
from spectral.environment import Environment, open_environment
from spectral.errors import ExitCode, SpectralError

PROBE_TIMEOUT_S = 5


class RowState(StrEnum):
    OK = "ok"
    OVERDUE = "overdue"
    FAILED = "failed"
    COULD_NOT_VERIFY = "could_not_verify"


# what the row's state makes of the whole fleet's exit code (the worst row wins)
EXIT = {RowState.OK: ExitCode.OK, RowState.COULD_NOT_VERIFY: ExitCode.COULD_NOT_VERIFY,
        RowState.OVERDUE: ExitCode.CHECK_FAILED, RowState.FAILED: ExitCode.CHECK_FAILED}
_RANK = [RowState.OK, RowState.COULD_NOT_VERIFY, RowState.OVERDUE, RowState.FAILED]


@dataclass(frozen=True)
class FleetStatus:
    at: datetime
    rows: list[dict[str, Any]]
    environments: dict[str, Environment] = field(default_factory=dict, repr=False)

    @property
    def exit_code(self) -> ExitCode:
        worst = max((RowState(r["state"]) for r in self.rows), key=_RANK.index,
                    default=RowState.OK)
        return EXIT[worst]

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "exit_code": int(self.exit_code),
                "environments": self.rows}


def fleet_status(cfg: SpectralConfig, now: datetime | None = None,
                 report: Callable[[str], None] | None = None) -> FleetStatus:
    """Every environment's status, in the configuration's order; every environment's
    configuration is validated first (one error lists every problem of every one)."""
    now = now or datetime.now(UTC)
    cfg.environments.check_all()
    environments = {name: open_environment(cfg, name, report=report) for name in cfg.environments}
    rows = [environment_row(environment, now) for environment in environments.values()]
    return FleetStatus(now, rows, environments)


def environment_row(environment: Environment, now: datetime) -> dict[str, Any]:
    """One environment's row: its status from its provider, or from its ledger alone (and
    could-not-verify) when the provider does not answer."""
    try:
        ledger = environment.ledger
        ledger.entries()
    except SpectralError as exc:
        return _blank(environment, now, f"evidence store: {exc.message}")
    error = None
    try:
        _probe(environment)
        facts = status_mod.facts(environment)
    except SpectralError as exc:
        error = exc.message
        facts = status_mod.Facts(ledger, None, None, None)
    info = status_mod.collect(environment.name, environment.config, facts, now)
    row = {"name": environment.name, "reachable": error is None, "error": error, **info,
           "window": None if error else _window(environment)}
    if error is not None:
        _unknown_backup(row)
    row["state"] = _state(row).value
    return row


def _probe(environment: Environment) -> None:
    """A database the provider names as running must answer (status.facts reads a failed
    connection as "not running"; for the fleet that is could-not-verify)."""
    from spectral.pg.conn import connect

    dsn = environment.provider.running_source()
    if dsn:
        with connect(dsn, timeout=PROBE_TIMEOUT_S) as conn:
            conn.execute("select 1")


def _window(environment: Environment) -> dict[str, str | None] | None:
    try:
        w = environment.provider.window()
    except SpectralError:
        return None

    def iso(t: datetime | None) -> str | None:
        return t.isoformat(timespec="seconds") if t else None

    return {"earliest": iso(w.earliest_time), "latest": iso(w.latest_time)}


def _unknown_backup(row: dict[str, Any]) -> None:
    """Backup freshness comes from the provider: unknown when it did not answer, not overdue."""
    if row["backup"]["state"] != "not required":
        row["backup"]["state"] = RowState.COULD_NOT_VERIFY.value
    row["overdue"] = [p for p in row["overdue"] if p != "Daily backup"]
    row["next_steps"] = [s for s in row["next_steps"] if not s.startswith("Daily backup:")]


def _state(row: dict[str, Any]) -> RowState:
    last = row.get("last_drill") or {}
    if last.get("outcome") == "fail":
        return RowState.FAILED
    if row.get("overdue"):
        return RowState.OVERDUE
    if not row["reachable"] or last.get("outcome") == "could_not_verify":
        return RowState.COULD_NOT_VERIFY
    return RowState.OK


def _blank(environment: Environment, now: datetime, error: str) -> dict[str, Any]:
    """A row whose evidence store cannot be read: nothing is known, every figure is empty."""
    env = environment.config
    return {"name": environment.name, "reachable": False, "error": error,
            "environment": environment.name, "posture": env.posture.value,
            "at": now.isoformat(),
            "targets": {"rpo_seconds": env.rpo_seconds, "rto_seconds": env.rto_seconds},
            "measured": {"rpo_seconds": None, "rto_seconds": None}, "last_drill": None,
            "cadence": [], "backup": {"newest": None, "age_seconds": None,
                                      "state": RowState.COULD_NOT_VERIFY.value},
            "wal": None, "ledger": None, "overdue": [], "next_steps": [], "window": None,
            "state": RowState.COULD_NOT_VERIFY.value}
