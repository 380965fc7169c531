"""`spectral dr status --all`: a Supabase project (the emulator), a local environment, a
Supabase project whose API refuses and a DSN that does not connect, in one table; each from its
own evidence store; alerts when something becomes overdue and when it recovers."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import SUPABASE_TOKEN, SYSTEM_PG15, spectral
from supabase_emulator import EMU_REF, Emulator, Server
from test_alerts import SECRET, Hook, closed_port


def test_a_row_is_its_worst_known_state() -> None:
    from spectral.drills.fleet import FleetStatus, RowState, _state
    from spectral.errors import ExitCode

    def row(outcome: str | None, overdue: list[str], reachable: bool = True) -> dict[str, Any]:
        return {"last_drill": {"outcome": outcome} if outcome else None, "overdue": overdue,
                "reachable": reachable}

    assert _state(row("fail", [], reachable=False)) is RowState.FAILED
    assert _state(row("pass", ["Tabletop review"], reachable=False)) is RowState.OVERDUE
    assert _state(row("could_not_verify", [])) is RowState.COULD_NOT_VERIFY
    assert _state(row("pass", [], reachable=False)) is RowState.COULD_NOT_VERIFY
    assert _state(row(None, [])) is RowState.OK

    def fleet(*states: RowState) -> ExitCode:
        return FleetStatus(datetime.now(UTC), [{"state": s.value} for s in states]).exit_code

    assert fleet(RowState.OK, RowState.COULD_NOT_VERIFY) is ExitCode.COULD_NOT_VERIFY
    assert fleet(RowState.COULD_NOT_VERIFY, RowState.FAILED) is ExitCode.CHECK_FAILED
    assert fleet(RowState.OVERDUE, RowState.COULD_NOT_VERIFY) is ExitCode.CHECK_FAILED
    assert fleet(RowState.OK) is ExitCode.OK and fleet() is ExitCode.OK


def _fleet(work: Path, dsn: str, hook: Hook) -> dict[str, str]:
    dead = closed_port()
    with (work / "spectral.toml").open("a") as f:
        f.write('[environments.staging]\nprovider = "local"\nposture = "alpha"\n'
                'schemas = ["core"]\nload_bearing_tables = []\n'
                '[environments.preview]\nprovider = "supabase"\nproject_ref = '
                f'"{EMU_REF}"\nposture = "alpha"\naccess_token = "env:SUPABASE_TEST_TOKEN"\n'
                f'api_url = "http://127.0.0.1:{dead}"\ndsn = "{dsn}"\nschemas = ["core"]\n'
                'load_bearing_tables = []\n'
                '[environments.analytics]\nprovider = "dsn"\nposture = "alpha"\n'
                f'dsn = "postgresql://spectral@127.0.0.1:{dead}/analytics"\n'
                '[environments.reports]\nprovider = "pgbackrest"\nposture = "alpha"\n'
                f'pg_bin_dir = "{SYSTEM_PG15}"\nschemas = ["public"]\n'
                'load_bearing_tables = []\n[environments.reports.pgbackrest]\n'
                f'stanza = "reports"\n[[environments.reports.pgbackrest.repositories]]\n'
                f'type = "posix"\npath = "{work / "pgbackrest-repo"}"\n'
                '[alerts.webhooks.oncall]\nurl = "env:HOOK_ONCALL"\n')
    return {"SUPABASE_TEST_TOKEN": SUPABASE_TOKEN, "HOOK_ONCALL": hook.url("oncall")}


def _status_all(work: Path, env: dict[str, str]) -> tuple[int, dict[str, dict[str, Any]], str]:
    from prometheus_client.parser import text_string_to_metric_families

    prom = work / "textfile" / "spectral.prom"
    res = spectral("dr", "status", "--all", "--json", "--prom-file", str(prom), cwd=work,
                   env=env)
    assert SUPABASE_TOKEN not in res.stdout + res.stderr and SECRET not in res.stdout + res.stderr
    doc = json.loads(res.stdout)
    assert doc["exit_code"] == res.returncode
    rows = {r["name"]: r for r in doc["environments"]}
    # the same rows in one exposition, a series per environment
    samples = [s for f in text_string_to_metric_families(prom.read_text()) for s in f.samples]
    assert {s.labels["environment"]: s.value for s in samples
            if s.name == "spectral_dr_reachable"} == {n: float(r["reachable"])
                                                      for n, r in rows.items()}
    assert {s.labels["environment"]: s.value for s in samples if s.name == "spectral_dr_ok"} \
        == {n: 0.0 if r["overdue"] else 1.0 for n, r in rows.items()}
    return res.returncode, rows, res.stderr


def _done(work: Path, env: dict[str, str], name: str) -> None:
    """The environment's monthly tabletop review, recorded in its own ledger."""
    answers = work / "answers.json"
    answers.write_text(json.dumps({"participants": ["ana"], "findings": [],
                                   "action_items": []}))
    res = spectral("--env", name, "dr", "tabletop", "--scenario", "schema-drop", "--answers",
                   str(answers), cwd=work, env=env)
    assert res.returncode == 0, res.stderr


@pytest.mark.server
@pytest.mark.skipif(shutil.which("pgbackrest") is None or not (SYSTEM_PG15 / "postgres").exists(),
                    reason="needs pgbackrest and Debian's PostgreSQL 15 (python3 dev.py test "
                           "installs both)")
def test_status_all_across_environments(
        project: tuple[Path, Emulator, str, Server]) -> None:
    work, _emu, dsn, _server = project
    hook = Hook()
    try:
        env = _fleet(work, dsn, hook)
        try:
            for name in ("staging", "reports"):
                up = spectral("--env", name, "local", "up", cwd=work, env=env)
                assert up.returncode == 0, up.stderr
            backup = spectral("--env", "reports", "dr", "backup", cwd=work, env=env)
            assert backup.returncode == 0, backup.stderr
            _first_and_second_look(work, env, hook)
        finally:
            for name in ("staging", "reports"):
                spectral("--env", name, "local", "down", cwd=work, env=env)
    finally:
        hook.close()
    for path in work.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".toml", ".log"):
            text = path.read_text(errors="replace")
            assert SECRET not in text and SUPABASE_TOKEN not in text, path


def _first_and_second_look(work: Path, env: dict[str, str], hook: Hook) -> None:
    code, rows, err = _status_all(work, env)
    assert code == 1, err               # new environments start overdue: 1 wins over 3
    assert list(rows) == ["production", "staging", "preview", "analytics", "reports"]
    prod, staging, preview, analytics, reports = (rows[n] for n in rows)
    assert prod["reachable"] and prod["posture"] == "pitr" and prod["state"] == "overdue"
    assert prod["window"]["latest"] and prod["backup"]["state"] == "ok"
    assert staging["reachable"] and staging["overdue"] == ["Tabletop review"]
    assert not preview["reachable"] and "unreachable" in preview["error"]
    assert preview["backup"]["state"] == "not required" and preview["state"] == "overdue"
    assert not analytics["reachable"] and analytics["backup"]["state"] == "not required"
    assert reports["reachable"] and reports["window"]["earliest"] and reports["backup"]["newest"]
    assert reports["wal"] is not None and reports["overdue"] == ["Tabletop review"]
    overdue = {(b["environment"], b["event"]) for b in hook.bodies}
    assert {("production", "overdue"), ("staging", "overdue"), ("preview", "overdue"),
            ("preview", "could_not_verify"), ("analytics", "could_not_verify")} <= overdue
    for name in rows:
        _done(work, env, name)
    hook.bodies.clear()
    code, rows, err = _status_all(work, env)
    assert {n: r["state"] for n, r in rows.items()} == {
        "production": "overdue", "staging": "ok", "preview": "could_not_verify",
        "analytics": "could_not_verify", "reports": "ok"}, rows
    assert {n: r["ledger"]["entries"] for n, r in rows.items()}["staging"] >= 2
    assert [(b["environment"], b["event"]) for b in hook.bodies] == [("staging", "recovered"),
                                                                      ("reports", "recovered")]
    # a drill that cannot verify (staging has no backup) is sent at once, its result printed
    hook.bodies.clear()
    drill = spectral("--env", "staging", "dr", "drill", "functional", "--json", cwd=work,
                     env=env)
    assert drill.returncode == 3 and json.loads(drill.stdout)["outcome"] == "could_not_verify"
    assert [(b["environment"], b["event"]) for b in hook.bodies] == [
        ("staging", "could_not_verify")]
    assert hook.bodies[0]["drill"] == json.loads(drill.stdout)
    # production as a re-seedable tier: nothing overdue anywhere, two rows unknown -> exit 3
    toml = work / "spectral.toml"
    toml.write_text(toml.read_text().replace('posture = "pitr"', 'posture = "alpha"', 1))
    hook.bodies.clear()
    code, rows, err = _status_all(work, env)
    assert code == 3 and rows["production"]["state"] == "ok", rows["production"]
    assert rows["staging"]["state"] == "could_not_verify"      # its last drill
    assert [(b["environment"], b["event"]) for b in hook.bodies] == [("production", "recovered")]
    text = _table(list(rows.values()))
    assert "preview: could not verify: Supabase Management API unreachable" in text
    assert "analytics: could not verify: cannot connect" in text
    assert text.count("entries, intact") == 5 and text.count("could not verify │") == 3


def _table(rows: list[dict[str, Any]]) -> str:
    """The table `dr status --all` prints, from the rows of its JSON."""
    import io

    from rich.console import Console

    from spectral.cli.fleet_cmds import _fleet_table

    out = io.StringIO()
    _fleet_table(Console(file=out, width=300, highlight=False), rows)
    return out.getvalue()
