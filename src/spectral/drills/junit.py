"""Drills and `dr status` as JUnit XML, the report format every CI system reads (`--junit FILE`):
one testsuite per drill or status, one testcase per check, and a check's outcome as the
element CI systems count: fail -> <failure>, could not verify -> <error>, not configured or not
required -> <skipped>. Written atomically: a CI step never reads half a report."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spectral.drills.result import DrillOutcome, DrillResult
from spectral.durable import write_atomic
from spectral.redact import redact

# outcome -> the element a testcase carries (None: passed)
ELEMENT = {DrillOutcome.PASS.value: None, DrillOutcome.FAIL.value: "failure",
           DrillOutcome.COULD_NOT_VERIFY.value: "error",
           DrillOutcome.NOT_CONFIGURED.value: "skipped"}
# a cadence item's or the backup's state -> the outcome it counts as
STATE_OUTCOME = {"ok": DrillOutcome.PASS.value, "overdue": DrillOutcome.FAIL.value,
                 "not required": DrillOutcome.NOT_CONFIGURED.value,
                 "unknown": DrillOutcome.COULD_NOT_VERIFY.value}


@dataclass(frozen=True)
class Case:
    name: str
    outcome: str                  # a DrillOutcome value; an unknown one counts as an error
    detail: str = ""
    evidence: tuple[str, ...] = ()


def suite(name: str, classname: str, cases: Iterable[Case], properties: dict[str, Any],
          timestamp: str | None = None, seconds: float | None = None) -> ET.Element:
    """A <testsuite> with its counts, properties and one <testcase> per case."""
    cases = list(cases)
    kinds = [ELEMENT.get(c.outcome, "error") for c in cases]
    el = ET.Element("testsuite", {
        "name": name, "tests": str(len(cases)), "failures": str(kinds.count("failure")),
        "errors": str(kinds.count("error")), "skipped": str(kinds.count("skipped")),
        "time": f"{seconds or 0:.3f}", **({"timestamp": timestamp} if timestamp else {})})
    props = ET.SubElement(el, "properties")
    for key, value in properties.items():
        if value is not None:
            ET.SubElement(props, "property", {"name": key, "value": redact(str(value))})
    for case, kind in zip(cases, kinds, strict=True):
        _testcase(el, classname, case, kind)
    return el


def _testcase(parent: ET.Element, classname: str, case: Case, kind: str | None) -> None:
    tc = ET.SubElement(parent, "testcase", {"classname": classname, "name": case.name,
                                            "time": "0"})
    if kind is not None:
        ET.SubElement(tc, kind, {"message": redact(case.detail), "type": case.outcome}).text = \
            redact("\n".join(case.evidence)) or None
    elif case.evidence or case.detail:
        ET.SubElement(tc, "system-out").text = redact("\n".join((case.detail, *case.evidence)))


def drill_suite(result: DrillResult) -> ET.Element:
    """A drill: a testcase per check, and one for the error that stopped it, if any."""
    cases = [Case(c.name, c.outcome.value, c.detail, tuple(c.evidence)) for c in result.checks]
    if result.error is not None:
        cases.append(Case("drill ran to the end", DrillOutcome.COULD_NOT_VERIFY.value,
                          result.error))
    kind = result.drill_type.value
    return suite(f"spectral drill {kind} {result.environment}",
                 f"spectral.drill.{kind}.{result.environment}", cases,
                 {"outcome": result.outcome.value, "backup_id": result.backup_id,
                  "recovery_target": result.recovery_target,
                  "rto_seconds": result.rto_seconds, "rpo_seconds": result.rpo_seconds},
                 result.started_at, result.rto_seconds or sum(result.timings.values()))


def status_suite(status: dict[str, Any]) -> ET.Element:
    """`dr status`: a testcase per cadence item, the daily backup and the ledger's integrity."""
    cases = [Case(i["name"], STATE_OUTCOME.get(i["state"], i["state"]),
                  f"{i['state']}" + (f": {i['detail']}" if i["detail"] else ""),
                  tuple(f"{k}: {i[k]}" for k in ("last_done", "due") if i.get(k)))
             for i in status["cadence"]]
    backup = status["backup"]
    cases.append(Case("Daily backup", STATE_OUTCOME.get(backup["state"], backup["state"]),
                      f"newest {backup['newest'] or 'none'} ({backup['state']})"))
    ledger = status["ledger"]
    cases.append(Case("Ledger integrity", DrillOutcome.PASS.value if ledger["intact"]
                      else DrillOutcome.FAIL.value,
                      f"{ledger['entries']} entries, head {ledger['head']}"))
    env = status["environment"]
    return suite(f"spectral status {env}", f"spectral.status.{env}", cases,
                 {"posture": status["posture"], "overdue": ", ".join(status["overdue"])},
                 status["at"])


def write_junit(path: Path, suites: Iterable[ET.Element]) -> None:
    """The suites under one <testsuites>, written atomically (temp file, fsync, rename)."""
    root = ET.Element("testsuites")
    root.extend(suites)
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in root)))
    ET.indent(root)
    write_atomic(path, ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n")
