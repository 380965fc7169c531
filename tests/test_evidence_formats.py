"""Evidence other tools read: the published JSON Schemas (docs/schemas) and the
`schema_version` every --json output carries, the JUnit XML of drills and `dr status`, and the
Prometheus textfile. No server: the outputs are built from their typed records, and the CLI runs
are of commands that need none (conftest.spectral validates every --json output it sees)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from typer.main import get_command

from conftest import spectral
from output_schemas import SCHEMAS, problems, schema, validate
from spectral.cli.app import app
from spectral.cli.outputs import FALLBACK, NO_JSON, stamped
from spectral.cli.outputs import SCHEMAS as COMMAND_SCHEMAS
from spectral.drills.result import Check, DrillEntry, DrillOutcome, DrillResult, DrillType

AT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[str]:
    out = []
    for name, cmd in getattr(group, "commands", {}).items():
        path = (*prefix, name)
        if getattr(cmd, "commands", None) is None or getattr(cmd, "invoke_without_command",
                                                             False):
            out.append(" ".join(path))
        out += _commands(cmd, path)
    return out


def test_every_schema_is_a_2020_12_schema_named_by_its_file() -> None:
    files = sorted(SCHEMAS.glob("*.json"))
    assert len(files) >= 40
    for path in files:
        doc = json.loads(path.read_text())
        Draft202012Validator.check_schema(doc)
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema", path.name
        assert doc["$id"] == f"urn:spectral-dr:schema:{path.name.removesuffix('.json')}"
        assert path.name.endswith(".v1.json"), path.name


def test_every_command_names_a_published_schema() -> None:
    """A new command fails here until its --json output has a schema (cli/outputs.py)."""
    commands = set(_commands(get_command(app)))
    assert "dr log" in commands and "dr drill functional" in commands
    missing = sorted(commands - set(COMMAND_SCHEMAS) - NO_JSON)
    assert not missing, f"commands without a schema in spectral/cli/outputs.py: {missing}"
    assert not set(COMMAND_SCHEMAS) - commands, "outputs.py names commands that do not exist"
    for name in {*COMMAND_SCHEMAS.values(), FALLBACK, "error.v1"}:
        assert schema(name)["$id"].endswith(name)


def test_the_schemas_enums_are_the_code_enums() -> None:
    """An outcome or kind added in the code fails here until the schema lists it (a new
    value is an additive change: same version)."""
    from spectral.drills.cadence import ItemState
    from spectral.exit.move import ExitOutcome
    from spectral.ledger import EntryKind
    from spectral.verify.compare import Outcome

    result = schema("drill-result.v1")["$defs"]
    assert set(result["check"]["properties"]["outcome"]["enum"]) == {o.value for o in
                                                                      DrillOutcome}
    assert set(result["body"]["properties"]["outcome"]["enum"]) == {   # a warning still passes
        o.value for o in DrillOutcome} - {DrillOutcome.NOT_CONFIGURED.value,
                                          DrillOutcome.WARN.value}
    entry = schema("ledger-entry.v1")["$defs"]["body"]
    assert set(entry["properties"]["kind"]["enum"]) == {k.value for k in EntryKind}
    assert {f"ledger-{k.value}.v1" for k in EntryKind} <= {p.name.removesuffix(".json")
                                                           for p in SCHEMAS.glob("*.json")}
    item = schema("cadence-item.v1")["$defs"]["body"]["properties"]["state"]["enum"]
    assert set(item) == {s.value for s in ItemState}
    assert set(schema("ledger-exit.v1")["properties"]["outcome"]["enum"]) == \
        {o.value for o in ExitOutcome}
    from spectral.alerts.settings import AlertEvent

    assert set(schema("ledger-alert.v1")["properties"]["event"]["enum"]) == \
        {e.value for e in AlertEvent}
    compared = schema("comparison.v1")["$defs"]["body"]["properties"]["outcome"]["enum"]
    assert set(compared) == {o.value for o in Outcome}
    from spectral.drills.due import DRILLS, DueAction

    due = schema("drills-due.v1")["$defs"]["environment"]["properties"]
    assert set(due["action"]["enum"]) == {a.value for a in DueAction}
    assert set(due["due"]["items"]["enum"]) == set(DRILLS)


def test_stamping_adds_schema_version_and_changes_nothing_else() -> None:
    assert list(stamped({"b": 1, "a": [2]}, "x.v1").items()) == [
        ("schema_version", "x.v1"), ("b", 1), ("a", [2])]
    assert stamped([{"a": 1}, {"a": 2}], "x.v1") == [{"schema_version": "x.v1", "a": 1},
                                                      {"schema_version": "x.v1", "a": 2}]
    assert stamped([], "x.v1") == [] and stamped(["s"], "x.v1") == ["s"]


def _drill(**changes: Any) -> DrillResult:
    from spectral.providers.base import Instance
    from spectral.providers.capabilities import RecoveryReached

    instance = Instance("r1", "host=/x port=5 dbname=d", 5, "/d", "b1", "lsn 0/1",
                        AT.isoformat(), RecoveryReached("at lsn 0/1", "0/1"))
    base: dict[str, Any] = {
        "checks": [Check("row counts", DrillOutcome.PASS, "1 table(s)", ["core.notes: 3"]),
                   Check("contract", DrillOutcome.NOT_CONFIGURED, "none configured"),
                   Check("amcheck", DrillOutcome.FAIL, "index core.notes_pkey block 1",
                         ["core.notes_pkey: block 1: bad"])],
        "backup_id": "b1", "recovery_target": "lsn 0/1", "snapshot_taken_at": AT.isoformat(),
        "timings": {"restore": 3.25, "verify": 1.0}, "rto_seconds": 12.5, "rpo_seconds": 0.0,
        "rto_target": 60.0, "instance": instance, "rpo_method": "m"}
    return DrillResult(DrillType.FUNCTIONAL, "e", AT.isoformat(), **{**base, **changes})


def test_the_drill_result_follows_its_schema_strictly_but_takes_added_fields() -> None:
    doc = stamped(_drill().to_json(), "drill-result.v1")
    validate(doc, "drill-result.v1")
    validate({**doc, "collations": {"libc": "2.36"}}, "drill-result.v1")   # additive
    assert problems({**doc, "outcome": "maybe"}, "drill-result.v1")
    assert problems({k: v for k, v in doc.items() if k != "checks"}, "drill-result.v1")
    assert problems({**doc, "rto_seconds": "12"}, "drill-result.v1")
    bad_check = {**doc, "checks": [{**doc["checks"][0], "outcome": "ok"}]}
    assert problems(bad_check, "drill-result.v1")
    assert problems({**doc, "schema_version": "drill-result.v2"}, "drill-result.v1")


def _payloads() -> dict[str, list[dict[str, Any]]]:
    from spectral.alerts.notify import AlertRecord
    from spectral.config.base import Posture
    from spectral.drills.drift_accept import AcceptedCount, DriftAcceptRecord
    from spectral.drills.tabletop import Tabletop, TabletopEntry
    from spectral.exit.move import ExitEntry, ExitOutcome, ExitResult
    from spectral.ledger.payloads import (
        ActivationRecord,
        IncidentRecord,
        InPlaceRestoreRecord,
        KeyRecord,
        RecoveredRecord,
        RepairRecord,
        SnapshotRecord,
        StepRecord,
        UndoRecord,
    )
    from spectral.playbooks.catalog import playbook
    from spectral.playbooks.runner import PlaybookRun, StepOutcome
    from spectral.playbooks.runner import StepRecord as PlaybookStep
    from spectral.playbooks.salvage import SalvageEntry, SalvageResult
    from spectral.runbook.model import NEUTRAL

    salvage = SalvageResult("core.notes", 765, [{"id": 1}], [], ["c"], already_back=[{"id": 2}])
    run = PlaybookRun("self-inflicted", "e", "pitr", "op", False,
                      [PlaybookStep(1, "t", True, StepOutcome.DONE, "d", "t1", "t2")])
    exit_ = ExitResult("e", ExitOutcome.PROVEN, "src", "tgt", {"r": 1}, ["p"], {"c": 1},
                       {"dump": 1.0}, ["u@x"])
    tabletop = Tabletop(playbook("self-inflicted", NEUTRAL), Posture.PITR, ["a"], ["n1"], ["f"],
                        [], AT)
    return {
        "drill": [DrillEntry(_drill(), "local").to_json(),
                  DrillEntry(_drill(checks=[], error="no backup"), "supabase").to_json()],
        "tabletop": [TabletopEntry(tabletop, {"summary": "s", "done": True}).to_json()],
        "incident": [IncidentRecord("self-inflicted", "oops", True).to_json(),
                     SalvageEntry(salvage).to_json(), run.to_json()],
        "activation": [ActivationRecord("activated", "manual",
                                        (StepRecord(1, "backups", True, "b1"),)).to_json()],
        "snapshot": [SnapshotRecord("snapshots/x.json", "t", "0/1", {"core": "a"}).to_json()],
        "restore": [InPlaceRestoreRecord("in place", "time t", "b1", "/p", ("/q",)).to_json(),
                    UndoRecord("undo", "e", "/p", "/u", 3).to_json(),
                    RecoveredRecord("recovered", False, "time t", "/p", (), 2).to_json()],
        "repair": [RepairRecord("removed torn line 3", 3, 10, "ab" * 32).to_json()],
        "exit": [ExitEntry(exit_).to_json()],
        "key": [KeyRecord("signing key added", add="AAAA").to_json(),
                KeyRecord("signing key revoked", revoke="BBBB").to_json()],
        "alert": [AlertRecord("oncall", "drill_failed", "slack", "drill FAIL", True, 200, None,
                              1).to_json(),
                  AlertRecord("ops", "overdue", "json", "s", False, None, "timed out",
                              3).to_json()],
        "drift_accepted": [DriftAcceptRecord(
            "drift accepted: core.a: 10 -> 5 rows", "purge", 4, None,
            {"core.a": AcceptedCount(10, 5)}).to_json()],
    }


def test_each_ledger_kind_follows_its_schema_in_a_real_ledger(tmp_path: Path) -> None:
    """Every kind's payload, written through a real ledger and read back as `dr log` prints
    it: the entry and its data follow ledger-entry.v1 and ledger-<kind>.v1."""
    from spectral.ledger import EntryKind, Ledger

    ledger = Ledger(tmp_path)
    for kind, docs in _payloads().items():
        for doc in docs:
            assert not problems(doc, f"ledger-{kind}.v1"), (kind, doc)
            ledger.append(EntryKind(kind), "e", doc)
    entries = [e.to_json() for e in reversed(ledger.entries())]
    assert {e["kind"] for e in entries} == {k.value for k in EntryKind}
    validate(stamped(entries, "ledger-entries.v1"), "ledger-entries.v1")
    drill = next(e for e in entries if e["kind"] == "drill")
    assert problems(stamped({**drill, "data": {**drill["data"], "outcome": "green"}},
                            "ledger-entry.v1"), "ledger-entry.v1")
    assert problems(stamped({**drill, "kind": "rumour"}, "ledger-entry.v1"), "ledger-entry.v1")
    old = {"outcome": "fail"}                   # an entry from before the fields existed
    assert not problems(old, "ledger-drill.v1")


def test_cli_outputs_carry_schema_version_and_errors_follow_error_v1(tmp_path: Path) -> None:
    """Commands that need no server, run as a user would; conftest.spectral validates each."""
    work = tmp_path
    (work / "spectral.toml").write_text('[environments.staging]\nprovider = "local"\n'
                                        'posture = "pitr"\nschemas = ["core"]\n')
    listed = spectral("--env", "staging", "dr", "playbook", "list", "--json", cwd=work)
    assert listed.returncode == 0, listed.stderr
    items = json.loads(listed.stdout)
    assert items and {i["schema_version"] for i in items} == {"playbooks.v1"}
    shown = spectral("--env", "staging", "dr", "playbook", "show", "schema-drop", "--json",
                     cwd=work)
    assert json.loads(shown.stdout)["schema_version"] == "playbook.v1"
    log = spectral("--env", "staging", "dr", "log", "--json", cwd=work)
    assert log.returncode == 0 and json.loads(log.stdout) == []
    key = spectral("dr", "log", "keygen", "--out", str(work / "k.pem"), "--json", cwd=work)
    assert json.loads(key.stdout)["schema_version"] == "signing-key.v1"
    bad = spectral("--env", "nowhere", "dr", "log", "--json", cwd=work)
    assert bad.returncode == 2
    error = json.loads(bad.stderr.strip().splitlines()[-1])
    assert error["schema_version"] == "error.v1" and "nowhere" in error["error"]


STATUS: dict[str, Any] = {
    "environment": 'pro"d\\1\nx', "posture": "pitr", "at": AT.isoformat(),
    "targets": {"rpo_seconds": 120, "rto_seconds": 3600},
    "measured": {"rpo_seconds": 1.5, "rto_seconds": None},
    "last_drill": {"at": AT.isoformat(), "type": "functional", "outcome": "pass", "error": None},
    "cadence": [{"name": "Tabletop review", "cadence": "monthly", "effort": "1 h",
                 "last_done": None, "due": None, "state": "overdue", "detail": ""},
                {"name": 'Post-"migration"\\drill\n2', "cadence": "after migrations",
                 "effort": "1 h", "last_done": AT.isoformat(), "due": None, "state": "ok",
                 "detail": "no migration"},
                {"name": "Functional restore drill", "cadence": "quarterly", "effort": "1 h",
                 "last_done": None, "due": None, "state": "not required", "detail": ""}],
    "backup": {"newest": "b1", "age_seconds": 60.0, "state": "ok"},
    "wal": {"rpo_bytes": 8192}, "ledger": {"entries": 4, "intact": False, "head": "ab"},
    "overdue": ["Tabletop review", "Ledger integrity"], "next_steps": []}


def test_status_follows_its_schema() -> None:
    validate(stamped(STATUS, "status.v1"), "status.v1")
    assert problems(stamped({**STATUS, "backup": {**STATUS["backup"], "state": "fine"}},
                            "status.v1"), "status.v1")


def test_the_prometheus_textfile_escapes_labels_and_parses(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from spectral.drills.metrics import write_prometheus

    path = tmp_path / "textfile" / "spectral.prom"
    write_prometheus(STATUS, path)
    text = path.read_text()
    assert 'environment="pro\\"d\\\\1\\nx"' in text                # quote, backslash, newline
    assert 'item="Post-\\"migration\\"\\\\drill\\n2"' in text
    samples = {(s.name, s.labels.get("item")): s for f in text_string_to_metric_families(text)
               for s in f.samples}
    env = STATUS["environment"]
    assert all(s.labels["environment"] == env for s in samples.values())
    assert samples[("spectral_dr_overdue", "Tabletop review")].value == 1.0
    assert samples[("spectral_dr_overdue", STATUS["cadence"][1]["name"])].value == 0.0
    names = {name for name, _ in samples}
    assert names == {"spectral_dr_rto_target_seconds", "spectral_dr_rpo_target_seconds",
                     "spectral_dr_rpo_seconds", "spectral_dr_last_drill_timestamp_seconds",
                     "spectral_dr_last_drill_passed", "spectral_dr_overdue",
                     "spectral_dr_backup_age_seconds", "spectral_dr_wal_lag_bytes",
                     "spectral_dr_ledger_intact", "spectral_dr_ok",
                     "spectral_dr_status_timestamp_seconds", "spectral_dr_last_drill_outcome"}
    assert samples[("spectral_dr_last_drill_timestamp_seconds", None)].value == AT.timestamp()
    assert samples[("spectral_dr_ok", None)].value == 0.0
    assert "spectral_dr_reachable" not in names                   # `--all` rows only
    assert "spectral_dr_rto_seconds" not in names                 # not measured: left out
    assert [p.name for p in path.parent.iterdir()] == ["spectral.prom"]   # no temporary left


def _suite(path: Path) -> tuple[ET.Element, dict[str, ET.Element]]:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    return suite, {tc.get("name", ""): tc for tc in suite.findall("testcase")}


def test_junit_of_a_drill_has_a_testcase_per_check(tmp_path: Path) -> None:
    from spectral.drills import junit

    result = _drill(error="teardown failed")
    result.checks.append(Check("RPO within target", DrillOutcome.COULD_NOT_VERIFY, "no time"))
    path = tmp_path / "reports" / "drill.xml"
    junit.write_junit(path, [junit.drill_suite(result)])
    suite, cases = _suite(path)
    assert suite.get("name") == "spectral drill functional e"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"),
            suite.get("skipped")) == ("5", "1", "2", "1")
    assert list(cases) == ["row counts", "contract", "amcheck", "RPO within target",
                           "drill ran to the end"]
    assert cases["row counts"].find("failure") is None and cases["row counts"].find("error") is None
    failure = cases["amcheck"].find("failure")
    assert failure is not None and failure.get("message") == "index core.notes_pkey block 1"
    assert failure.text == "core.notes_pkey: block 1: bad"
    assert cases["contract"].find("skipped") is not None
    assert cases["RPO within target"].find("error") is not None
    error = cases["drill ran to the end"].find("error")
    assert error is not None and error.get("message") == "teardown failed"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["outcome"] == "fail" and props["backup_id"] == "b1"
    assert [p.name for p in path.parent.iterdir()] == ["drill.xml"]


def test_junit_of_status_has_a_testcase_per_item(tmp_path: Path) -> None:
    from spectral.drills import junit

    path = tmp_path / "status.xml"
    junit.write_junit(path, [junit.status_suite(STATUS)])
    suite, cases = _suite(path)
    assert suite.get("name") == f"spectral status {STATUS['environment']}"   # escaped, read back
    assert set(cases) == {"Tabletop review", STATUS["cadence"][1]["name"],
                          "Functional restore drill", "Daily backup", "Ledger integrity"}
    assert cases["Tabletop review"].find("failure") is not None
    assert cases["Ledger integrity"].find("failure") is not None
    assert cases["Functional restore drill"].find("skipped") is not None
    assert cases["Daily backup"].find("failure") is None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("5", "2", "1")


@pytest.mark.parametrize("name", ["drill-result.v1", "status.v1", "ledger-entry.v1"])
def test_the_main_schemas_require_schema_version(name: str) -> None:
    assert problems({}, name)
