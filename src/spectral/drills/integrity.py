"""The physical checks of a drill's copy, after it compared equal (or not) with its source:
what recovery logged, pg_amcheck, and every block's checksum. Each is asked of the object the
provider handed out with the copy (providers/integrity.py); a provider without one says so in a
not-checked line, never a pass.

pg_amcheck's thorough checks (--heapallindexed --parent-check) read every tuple against every
index: they run when asked (`--amcheck thorough`) and otherwise on the cadence the environment
sets (`amcheck_thorough_every`, by default from its posture tier): when the newest drill that
ran them is older than that, or none did."""

from __future__ import annotations

import time
from datetime import datetime
from enum import StrEnum

from spectral.config.models import EnvironmentConfig
from spectral.drills.result import Check, DrillOutcome, DrillResult
from spectral.ledger import Entry, EntryKind, payloads
from spectral.providers.integrity import CopyIntegrity, IntegrityReport, IntegrityState

RECOVERY_LOG = "recovery log (warnings and errors while the copy recovered)"
AMCHECK = "physical integrity: pg_amcheck"
CHECKSUMS = "physical integrity: data checksums (pg_checksums)"
THOROUGH_MARK = "thorough"

OUTCOME = {IntegrityState.SOUND: DrillOutcome.PASS, IntegrityState.DAMAGED: DrillOutcome.FAIL,
           IntegrityState.NOT_CHECKED: DrillOutcome.NOT_CONFIGURED,
           IntegrityState.COULD_NOT_CHECK: DrillOutcome.COULD_NOT_VERIFY}


class AmcheckLevel(StrEnum):
    BASIC = "basic"          # B-tree structure and heap pages
    THOROUGH = "thorough"    # and --heapallindexed --parent-check


def amcheck_level(asked: AmcheckLevel | None, env: EnvironmentConfig, entries: list[Entry],
                  now: datetime, environment: str | None = None) -> tuple[AmcheckLevel, str]:
    """The level this drill of `environment` runs at and why."""
    if asked is not None:
        return asked, "asked for"
    every = env.amcheck_thorough_seconds
    last = last_thorough(entries, environment)
    if last is None:
        return AmcheckLevel.THOROUGH, "no earlier drill ran the thorough checks"
    age = (now - last).total_seconds()
    said = (f"the last thorough check was {age / 86400:.1f} days ago; amcheck_thorough_every "
            f"is {every / 86400:g} days")
    return (AmcheckLevel.THOROUGH if age >= every else AmcheckLevel.BASIC), said


def last_thorough(entries: list[Entry], environment: str | None = None) -> datetime | None:
    """When a drill (of `environment`, when given: a ledger may be shared) last ran
    pg_amcheck's thorough checks to the end, whether it found damage or not."""
    for entry in sorted(entries, key=lambda e: e.seq, reverse=True):
        if entry.kind is not EntryKind.DRILL or environment not in {None, entry.environment}:
            continue
        for check in payloads.drill(entry).checks:
            if check.name.startswith(AMCHECK) and THOROUGH_MARK in check.name and \
                    check.outcome in {DrillOutcome.PASS.value, DrillOutcome.FAIL.value}:
                return entry.at
    return None


def check_copy(result: DrillResult, integrity: CopyIntegrity | None, level: AmcheckLevel,
               why: str, *, kept: bool, none_because: str) -> None:
    """Append the copy's physical checks to the drill's result (the copy is stopped after the
    last, unless it is kept)."""
    started = time.monotonic()
    amcheck = f"{AMCHECK} ({level.value})"
    if integrity is None:
        for name in (RECOVERY_LOG, amcheck, CHECKSUMS):
            result.checks.append(Check(name, DrillOutcome.NOT_CONFIGURED,
                                       f"not checked: {none_because}"))
        return
    result.checks.append(_check(RECOVERY_LOG, integrity.recovery_log()))
    result.checks.append(_check(amcheck, integrity.amcheck(
        thorough=level is AmcheckLevel.THOROUGH), f" ({why})"))
    if kept:
        result.checks.append(Check(CHECKSUMS, DrillOutcome.NOT_CONFIGURED, "not checked: the "
                                   "copy is kept running (--keep); pg_checksums needs it "
                                   "stopped"))
    else:
        result.checks.append(_check(CHECKSUMS, integrity.checksums()))
    result.timings["integrity"] = time.monotonic() - started


def _check(name: str, report: IntegrityReport, why: str = "") -> Check:
    detail = report.detail + why
    if report.state is IntegrityState.NOT_CHECKED:
        detail = f"not checked: {detail}"
    if report.state is IntegrityState.DAMAGED and report.findings:   # the report shows detail
        detail += f"; the first: {report.findings[0]}"
    return Check(name, OUTCOME[report.state], detail,
                 list(report.findings) + [f"note: {n}" for n in report.notes])
