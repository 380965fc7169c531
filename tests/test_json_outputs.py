"""The `--json` outputs (and the fingerprint file) of the commands that emit the fingerprint
document, in-place and undo outcomes, drill results and ledger entries do not change: each is
compared, key order included, with the output recorded in tests/data/json_outputs/ before the
documents became typed, with what differs from run to run (times, LSNs, ports, paths, hashes,
ids, durations) normalised.

To record them again (only for an intended change of an output, said in the commit):
SPECTRAL_RECORD_JSON=1 pytest tests/test_json_outputs.py"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from conftest import notes_environment, spectral
from spectral.pg.conn import connect
from spectral.verify.document import Fingerprint

RECORDED = Path(__file__).parent / "data" / "json_outputs"
RECORD = os.environ.get("SPECTRAL_RECORD_JSON") == "1"

# keys whose values differ from run to run whatever they hold
VOLATILE = {"seconds", "duration_s", "size_bytes", "port", "pid", "rto_seconds", "rpo_seconds",
            "system_identifier", "timings", "snapshot", "bytes", "locator", "wal_bytes",
            "server_version", "server_version_num", "restarts", "rows_per_second"}
PATTERNS = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}(:?\d{2})?|Z)?"),
     "<time>"),
    (re.compile(r"\b[0-9A-F]{1,8}/[0-9A-F]{1,8}\b"), "<lsn>"),
    (re.compile(r"\b[0-9a-f]{16,}\b"), "<hash>"),
    (re.compile(r"\b[0-9A-F]{24}\b"), "<segment>"),
    (re.compile(r"\b(port[= ])\d+"), r"\1<port>"),
    (re.compile(r"\b(pid )\d+"), r"\1<pid>"),
    (re.compile(r"\br\d{8}T\d{6,}\b"), "<instance>"),
    (re.compile(r"\b\d{8}T\d{6}(\.\d+)?[0-9A-Za-z-]*"), "<backup>"),
    (re.compile(r"_[0-9A-F]+-[0-9A-F]+\.json\b"), "_<lsn>.json"),
    (re.compile(r"\b(transaction )\d+"), r"\1<xid>"),
    (re.compile(r"\d+(\.\d+)? ?(ms|s|min|h)\b"), "<duration>"),
    (re.compile(r"\b\d+ (line\(s\))"), r"<n> \1"),     # how much a server logged
]


def normalise(value: Any, root: str) -> Any:
    if isinstance(value, dict):
        return {k: _placeholder(v) if k in VOLATILE else normalise(v, root)
                for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, root) for v in value]
    if isinstance(value, float):
        return "<float>"
    if isinstance(value, str):
        value = value.replace(root, "<dir>")
        for pattern, replacement in PATTERNS:
            value = pattern.sub(replacement, value)
    return value


def _placeholder(value: Any) -> Any:
    return None if value is None else f"<{type(value).__name__}>"


def check(name: str, document: Any, root: Path) -> None:
    text = json.dumps(normalise(document, str(root)), indent=1, ensure_ascii=False) + "\n"
    path = RECORDED / f"{name}.json"
    if RECORD:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} was never recorded (SPECTRAL_RECORD_JSON=1)"
    assert text == path.read_text(), f"the --json output of {name} changed"


def run(work: Path, *args: str) -> Any:
    done = spectral("--env", "staging", *args, "--json", cwd=work)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout)


@pytest.mark.server
def test_json_outputs_are_unchanged(work_dir: Path) -> None:
    with notes_environment(work_dir) as environment:
        dsn = environment.provider.running_source()
        assert dsn is not None
        check("fingerprint", run(work_dir, "dr", "fingerprint", "--content",
                                 "--out", str(work_dir / "fp.json")), work_dir)
        stored = json.loads((work_dir / "fp.json").read_text())
        check("fingerprint_file", stored, work_dir)
        typed = Fingerprint.from_json(stored)        # the typed document reads it back whole
        assert typed.to_json() == stored and typed.sealed().seal == stored["seal"]
        check("compare", run(work_dir, "dr", "compare", str(work_dir / "fp.json"), "staging"),
              work_dir)
        check("snapshot", run(work_dir, "dr", "snapshot"), work_dir)
        with connect(dsn) as conn:
            conn.execute("insert into core.notes values (2, 'kept')")
        time.sleep(1.1)
        point = datetime.now(UTC)
        time.sleep(1.1)
        with connect(dsn) as conn:
            conn.execute("insert into core.notes values (3, 'lost')")
        check("restore_in_place", run(work_dir, "dr", "restore", "--in-place", "--yes",
                                      "--target-time", point.isoformat()), work_dir)
        check("restore_undo", run(work_dir, "dr", "restore", "--undo", "--yes"), work_dir)
        run(work_dir, "dr", "backup")      # an undo needs a full backup before the drill's
        junit = work_dir / "ci" / "drill.xml"
        check("drill", run(work_dir, "dr", "drill", "functional", "--yes", "--junit",
                           str(junit)), work_dir)
        suite = ElementTree.parse(junit).getroot().find("testsuite")   # --junit: for CI
        assert suite is not None and suite.get("name") == "spectral drill functional staging"
        cases = {c.get("name"): c for c in suite.iter("testcase")}
        assert "row counts of load-bearing tables" in cases and suite.get("failures") == "0"
        assert cases["contract"].find("skipped") is not None      # not configured
        check("log", run(work_dir, "dr", "log"), work_dir)


def test_ledger_payloads_read_old_and_new_entries() -> None:
    from spectral.ledger import Entry, EntryKind
    from spectral.ledger.payloads import DrillRecord, SnapshotRecord, drill, snapshot

    at = datetime(2026, 12, 1, tzinfo=UTC)
    data = {"type": "functional", "outcome": "pass", "rto_seconds": 12.5, "rpo_seconds": 0,
            "backup_id": "b1", "error": None, "timings": {"restore": 3.25, "note": "x"},
            "checks": [{"name": "c", "outcome": "pass", "detail": "d", "evidence": ["e"]}],
            "partner_corpora": ["p"], "provider": "local"}
    done = drill(Entry(1, at, EntryKind.DRILL, "e", data, "0", "h"))
    assert done == DrillRecord("functional", "pass", "b1", 12.5, 0.0, None,
                               done.checks, ("p",), "local", {"restore": 3.25})
    assert (done.checks[0].name, done.checks[0].evidence) == ("c", ("e",))
    old = drill(Entry(2, at, EntryKind.DRILL, "e", {"outcome": "fail"}, "0", "h"))
    assert (old.type, old.rto_seconds, old.checks, old.timings) == ("functional", None, (), {})
    snap = {"path": "snapshots/x.json", "taken_at": "t", "lsn": "0/1", "schemas": {"core": "a"}}
    entry = Entry(3, at, EntryKind.SNAPSHOT, "e", snap, "0", "h")
    assert snapshot(entry).to_json() == snap
    assert json.dumps(SnapshotRecord.from_json(snap).to_json()) == json.dumps(snap)
    with pytest.raises(ValueError, match="#3 is a snapshot entry"):
        drill(entry)


def test_the_runbook_history_reads_each_kind_of_entry() -> None:
    from spectral.ledger import Entry, EntryKind
    from spectral.runbook.render import _history_line

    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)

    def line(kind: EntryKind, data: dict[str, Any]) -> str | None:
        return _history_line(Entry(1, at, kind, "e", data, "0", "h"))

    day = "- 2026-12-01 09:30 UTC — "
    assert line(EntryKind.TABLETOP, {"scenario": "schema-drop", "participants": ["a", "b"],
                                     "findings": ["f"], "action_items": []}) == \
        f"{day}tabletop review of schema-drop: 2 participant(s), 1 finding(s), 0 action item(s)"
    assert line(EntryKind.INCIDENT, {"playbook": "self-inflicted", "summary": "oops"}) == \
        f"{day}incident: oops"
    assert line(EntryKind.INCIDENT, {"playbook": "self-inflicted"}) == \
        f"{day}incident: self-inflicted"
    assert line(EntryKind.ACTIVATION, {"trigger": "manual", "steps": []}) == \
        f"{day}activation: manual"
    assert line(EntryKind.DRILL, {"type": "functional", "outcome": "pass", "rto_seconds": 5.0,
                                  "rpo_seconds": None, "backup_id": "b1", "error": None}) == \
        f"{day}functional drill: **PASS**; RTO 5.0 s, RPO -; backup b1"
    assert line(EntryKind.RESTORE, {"summary": "in-place restore to time t"}) == \
        f"{day}restore: in-place restore to time t"


def test_restore_outcomes_read_back_and_print_as_before() -> None:
    import io

    from rich.console import Console

    from spectral.cli.backup_cmds import _print_in_place
    from spectral.providers.base import InPlaceResult
    from spectral.providers.capabilities import RecoveryReached, UndoOutcome

    reached = {"stopped": "before commit of transaction 765, time t", "redo_done_lsn": "0/1",
               "last_transaction": "t", "paused": False, "prepared": ["g1"], "resolved": None}
    assert json.dumps(RecoveryReached.from_json(reached).to_json()) == json.dumps(reached)
    instance = {k: v for k, v in reached.items() if k != "prepared"}
    assert json.dumps(RecoveryReached.from_json(instance).to_json()) == json.dumps(instance)
    assert RecoveryReached.of({}) is None
    undo = {"environment": "e", "restored": "/d.previous-1", "set_aside": "/d.undone-1",
            "timeline": 3}
    assert json.dumps(UndoOutcome.from_json(undo).to_json()) == json.dumps(undo)
    out = io.StringIO()
    _print_in_place(Console(file=out, width=500), InPlaceResult(
        "e", "environment e", "time t", 1.0, "", "b1", "/d.previous-1", ["/d.previous-0"],
        reached=RecoveryReached.from_json(reached)))
    assert out.getvalue().splitlines() == [
        "e: restored in place to time t from backup b1; the previous data is kept at "
        "/d.previous-1 (spectral dr restore --undo | --discard-previous)",
        "  discarded the older kept-aside /d.previous-0",
        "  prepared transaction 'g1' is pending again and holds its locks (it was committed "
        "or rolled back after the target): COMMIT PREPARED or ROLLBACK PREPARED it"]


def test_ledger_payloads_of_each_kind_are_unchanged(tmp_path: Path) -> None:
    """What the ledger keeps of a drill, a tabletop review, a salvage and a playbook's run
    (incidents), an exit and a Supabase copy: each written from its typed payload, as the
    dicts built at the append calls before wrote it (recorded from that code)."""
    from spectral.config.base import Posture
    from spectral.drills.result import Check, DrillEntry, DrillOutcome, DrillResult, DrillType
    from spectral.drills.tabletop import Tabletop, TabletopEntry
    from spectral.exit.move import ExitEntry, ExitOutcome, ExitResult
    from spectral.playbooks.catalog import playbook
    from spectral.playbooks.runner import PlaybookRun, StepOutcome, StepRecord
    from spectral.playbooks.salvage import SalvageEntry, SalvageResult
    from spectral.providers.base import Instance
    from spectral.providers.capabilities import RecoveryReached
    from spectral.providers.supabase.copies import ProjectCopy
    from spectral.runbook.model import NEUTRAL

    at = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    instance = Instance("r1", "host=/x port=5 dbname=d", 5, "/d", "b1", "lsn 0/1",
                        at.isoformat(), RecoveryReached("at lsn 0/1", "0/1"))
    drill = DrillResult(DrillType.FUNCTIONAL, "e", at.isoformat(), backup_id="b1",
                        recovery_target="lsn 0/1", snapshot_taken_at=at.isoformat(),
                        checks=[Check("c", DrillOutcome.PASS, "d", ["e"])],
                        timings={"restore": 3.25}, rto_seconds=12.5, rpo_seconds=0.0,
                        rto_target=60.0, instance=instance, partner_corpora=["p"],
                        rpo_method="m")
    tabletop = Tabletop(playbook("self-inflicted", NEUTRAL), Posture.PITR, ["a", "b"], ["n1"],
                        ["f"], ["x"], at)
    salvage = SalvageResult("core.notes", 765, [{"id": 1}], [{"id": 3}], ["c"],
                            already_back=[{"id": 2}])
    exit_ = ExitResult("e", ExitOutcome.PROVEN, "src", "tgt", {"r": 1}, ["p"], {"c": 1},
                       {"dump": 1.0, "restore": 2.0, "verify": 3.0}, ["u@x"])
    run = PlaybookRun("self-inflicted", "e", "pitr", "op", False,
                      [StepRecord(1, "t", True, StepOutcome.DONE, "d", "t1", "t2")])
    check("ledger_payloads", {
        "drill": DrillEntry(drill, "local").to_json(),
        "tabletop": TabletopEntry(tabletop, {"report": 1}).to_json(),
        "incident_salvage": SalvageEntry(salvage).to_json(),
        "incident_playbook": run.to_json(),
        "exit": ExitEntry(exit_).to_json(),
        "project_copy": ProjectCopy("abc", "br1").to_json()}, tmp_path)
    assert (DrillEntry.KIND, TabletopEntry.KIND, SalvageEntry.KIND, PlaybookRun.KIND,
            ExitEntry.KIND) == ("drill", "tabletop", "incident", "incident", "exit")
    assert Instance.from_json(instance.to_json()) == instance
