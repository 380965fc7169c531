"""The Supabase provider against the emulator backed by a real cluster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import SPECTRAL, SUPABASE_TOKEN, spectral
from spectral.pg.conn import connect
from spectral.providers.supabase.client import ApiError, ManagementClient
from supabase_emulator import EMU_REF, Emulator, Server

TOKEN = SUPABASE_TOKEN


def cli(work: Path, *args: str) -> tuple[int, str, str]:
    res = spectral("--env", "production", *args, cwd=work,
                   env={"SUPABASE_TEST_TOKEN": TOKEN})
    assert TOKEN not in res.stdout + res.stderr, "the token leaked into the output"
    return res.returncode, res.stdout, res.stderr


def test_backups_and_window(project: tuple[Path, Emulator, str, Server]) -> None:
    work, _emu, _dsn, _server = project
    code, out, err = cli(work, "dr", "backups", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["pitr_enabled"] and doc["backups"][0]["physical"] is True
    assert doc["window"]["earliest_time"] and doc["window"]["latest_time"]


def test_pitr_in_place_really_rewinds(project: tuple[Path, Emulator, str, Server]) -> None:
    work, emu, dsn, _server = project
    emu.restore_delay = 1.5   # the project reads ACTIVE_HEALTHY for a moment after the request
    with connect(dsn) as conn:
        conn.execute("insert into core.notes values (2, 'first')")
    time.sleep(1.5)
    target = datetime.now(UTC)
    time.sleep(1.5)
    with connect(dsn) as conn:
        conn.execute("insert into core.notes values (3, 'second')")
    code, _out, err = cli(work, "dr", "restore", "--in-place", "--target-time",
                          target.isoformat(), "--yes")
    assert code == 2 and "only from a playbook" in err     # never directly
    code, _out, err = cli(work, "dr", "playbook", "run", "self-inflicted", "--target-time",
                          "2001-01-01T00:00:00Z", "--yes")
    assert code == 1 and "outside the recoverable window" in err
    assert not any(path.endswith("restore-pitr") for _m, path in emu.calls)   # refused first
    code, out, err = cli(work, "dr", "playbook", "run", "self-inflicted", "--target-time",
                         target.isoformat(), "--yes", "--json")
    assert code == 0, err + out
    run = json.loads(out)
    assert [s["outcome"] for s in run["steps"]] == ["done", "done", "done"]
    assert "schemas match the snapshot" in run["steps"][1]["detail"]
    assert "core.notes: 3 -> 2 rows" in run["steps"][1]["detail"]
    with connect(dsn) as conn:
        assert conn.execute("select id from core.notes order by id").fetchall() == [(1,), (2,)]
    evidence = "".join(p.read_text(errors="replace") for p in work.rglob("*")
                       if p.is_file() and p.suffix in (".json", ".jsonl", ".toml", ".log"))
    assert TOKEN not in evidence


def test_pitr_not_enabled_gives_the_api_message(
        project: tuple[Path, Emulator, str, Server]) -> None:
    work, emu, _dsn, _server = project
    emu.projects[EMU_REF].pitr_enabled = False
    code, _out, err = cli(work, "dr", "playbook", "run", "self-inflicted", "--target-time",
                          datetime.now(UTC).isoformat(), "--yes")
    assert code == 1 and "PITR is not enabled for this project." in err


def test_api_message_and_rate_limit(project: tuple[Path, Emulator, str, Server]) -> None:
    _work, emu, _dsn, server = project
    client = ManagementClient(TOKEN, server.url)
    emu.projects[EMU_REF].pitr_enabled = False
    with pytest.raises(ApiError, match=r"PITR is not enabled for this project\."):
        client.post(f"/projects/{EMU_REF}/database/backups/restore-pitr",
                    {"recovery_time_target_unix": 1})
    emu.throttle = 2
    assert client.get(f"/projects/{EMU_REF}")["status"] == "ACTIVE_HEALTHY"
    assert client.retries == 2
    emu.throttle, emu.retry_after = 1, False    # a 429 with only X-RateLimit-Reset
    started = time.monotonic()
    assert client.get(f"/projects/{EMU_REF}")["status"] == "ACTIVE_HEALTHY"
    assert client.retries == 3 and time.monotonic() - started >= 0.9   # waited for the reset
    bad = ManagementClient("sbp_wrongtoken00000000", server.url)
    with pytest.raises(ApiError) as exc:
        bad.get(f"/projects/{EMU_REF}")
    assert exc.value.status == 401 and "sbp_wrong" not in str(exc.value)


def _operator(proc: subprocess.Popen[str], emu: Emulator, lines: list[str],
              click: Callable[[str, Emulator], None]) -> None:
    """Reads the drill's instructions like an operator and does what they say (`click`)."""
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        try:
            click(line, emu)
        except Exception as exc:   # shown in the test's failure message
            lines.append(f"operator: the restore failed: {exc!r}\n")


def _guided_drill(work: Path, emu: Emulator, click: Callable[[str, Emulator], None],
                  *extra: str) -> tuple[int, str, str]:
    """`spectral dr drill functional` with an operator at the dashboard."""
    proc = subprocess.Popen([SPECTRAL, "--env", "production", "dr", "drill", "functional",
                             "--yes", "--wait", "120", "--json", *extra], cwd=work, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL,
                            env={**os.environ, "SUPABASE_TEST_TOKEN": TOKEN,
                                 "COLUMNS": "200"})
    lines: list[str] = []
    operator = threading.Thread(target=_operator, args=(proc, emu, lines, click), daemon=True)
    operator.start()
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.wait(timeout=300)
    operator.join(timeout=10)
    return proc.returncode, out, "".join(lines + emu.errors)


def _pick_time(line: str, emu: Emulator) -> None:
    found = re.search(r"\(unix (\d+)\)", line)
    if found:
        emu.restore_to_new_project(EMU_REF, int(found.group(1)))


def _pick_backup(line: str, emu: Emulator) -> None:
    found = re.search(r"the backup of (\S+)", line)
    if found:
        emu.restore_backup_to_new_project(EMU_REF, found.group(1))


def test_guided_drill_end_to_end(project: tuple[Path, Emulator, str, Server]) -> None:
    work, emu, dsn, _server = project
    with connect(dsn) as conn:
        conn.execute("insert into core.notes select g, 'n' || g from generate_series(2, 50) g")
    code, out, err = _guided_drill(work, emu, _pick_time)
    assert code == 0, err + out
    assert "Database -> Backups -> Restore to a new project" in err
    result = json.loads(out)
    assert result["outcome"] == "pass"
    restored = result["instance"]["project_ref"]
    assert restored.startswith("emr") and restored not in emu.projects     # deleted
    assert ("DELETE", f"/v1/projects/{restored}") in emu.calls
    outcomes = {c["name"].split(" (")[0]: c["outcome"] for c in result["checks"]}
    assert outcomes["row counts of load-bearing tables"] == "pass"
    # read through the endpoint too: the copy's collation versions (issue 31)
    assert outcomes["collation versions on the restore host"] == "pass", result["checks"]
    assert result["rto_seconds"] > 0 and "teardown" in result["timings"]
    # no DSN for the copy was given: it was read through the read-only query endpoint, in a
    # handful of statements (plan, catalogs, probes, content, contract and partners)
    assert 0 < emu.queries <= 12, emu.queries
    code, log, _ = cli(work, "dr", "log", "--kind", "drill", "--json")
    entry = json.loads(log)[0]
    assert code == 0 and entry["data"]["provider"] == "supabase"
    assert entry["data"]["instance"]["project_ref"] == restored
    assert TOKEN not in err + out
    evidence = "".join(p.read_text(errors="replace") for p in work.rglob("*")
                       if p.is_file() and p.suffix in (".json", ".jsonl", ".toml", ".log"))
    assert TOKEN not in evidence


def test_guided_drill_waits_for_a_lagging_window(
        project: tuple[Path, Emulator, str, Server]) -> None:
    """The PITR window trails now (WAL ships every ~2 minutes): the drill waits until the
    point it asks the operator to restore is inside it."""
    work, emu, _dsn, _server = project
    emu.window_lag = 6
    code, out, err = _guided_drill(work, emu, _pick_time)
    assert code == 0, err + out
    assert "waiting for the recoverable window to reach" in err
    assert json.loads(out)["outcome"] == "pass"


def test_guided_drill_with_a_data_branch(project: tuple[Path, Emulator, str, Server]) -> None:
    work, emu, _dsn, _server = project
    code, out, err = cli(work, "dr", "drill", "functional", "--branch", "--yes", "--wait", "120",
                         "--json")
    assert code == 0, err + out
    result = json.loads(out)
    assert "does not exercise the dashboard's restore" in err
    assert result["outcome"] == "pass" and result["rto_seconds"] is None
    assert result["instance"]["branch_id"] and not [
        r for r, p in emu.projects.items() if p.branch_id]                   # branch deleted
    assert any(m == "DELETE" and path.startswith("/v1/branches/") for m, path in emu.calls)


def test_row_security_on_the_reading_role_is_could_not_verify(
        project: tuple[Path, Emulator, str, Server]) -> None:
    """Were supabase_read_only_user subject to a table's policies, its count would be short:
    the drill says it could not verify that table, naming the role, instead of failing it or
    passing it."""
    work, emu, dsn, _server = project
    with connect(dsn) as conn:
        conn.execute("alter table core.notes enable row level security")
    emu.read_only_bypass_rls = False
    code, out, err = cli(work, "dr", "drill", "functional", "--branch", "--yes", "--wait", "120",
                         "--json")
    assert code == 3, err + out
    counts = {c["name"].split(" (")[0]: c for c in json.loads(out)["checks"]}[
        "row counts of load-bearing tables"]
    assert counts["outcome"] == "could_not_verify"
    assert any("supabase_read_only_user" in e for e in counts["evidence"]), counts


def test_guided_drill_refuses_production_as_the_copy(
        project: tuple[Path, Emulator, str, Server]) -> None:
    work, emu, _dsn, _server = project
    code, _out, err = cli(work, "dr", "drill", "functional", "--restored-ref", EMU_REF,
                          "--yes")
    assert code == 2 and "never production" in err
    assert not any(m == "DELETE" for m, _p in emu.calls)


def test_activate_pitr_through_the_api(project: tuple[Path, Emulator, str, Server]) -> None:
    work, emu, _dsn, _server = project
    config = work / "spectral.toml"
    config.write_text(config.read_text().replace('posture = "pitr"', 'posture = "pro"'))
    emu.projects[EMU_REF].pitr_enabled = False
    emu.plan = "free"
    code, _out, err = cli(work, "dr", "activate-pitr", "--pitr-addon", "pitr_7", "--yes")
    assert code == 1 and "organization plan free" in err
    assert not any(m == "PATCH" for m, _p in emu.calls)          # nothing billed on Free
    emu.plan = "pro"
    code, _out, err = cli(work, "dr", "activate-pitr")
    assert code == 1 and "pitr_enabled false" in err
    code, _out, err = cli(work, "dr", "activate-pitr", "--pitr-addon", "pitr_7")
    assert code == 2 and "not confirmed" in err                  # no terminal: refused
    assert not any(m == "PATCH" for m, _p in emu.calls)
    code, out, err = cli(work, "dr", "activate-pitr", "--pitr-addon", "pitr_7", "--yes",
                         "--trigger", "first-partner-data", "--json")
    assert code == 0, err + out
    steps = json.loads(out)["steps"]
    assert [s["done"] for s in steps] == [True, True, True, True]
    assert "add-on pitr_7" in steps[1]["evidence"]
    assert ("PATCH", f"/v1/projects/{EMU_REF}/billing/addons") in emu.calls
    text = config.read_text()
    assert 'posture = "pitr"' in text and text.startswith("# production on Supabase")
    code, log, _ = cli(work, "dr", "log", "--kind", "activation", "--json")
    assert code == 0 and "first-partner-data" in json.loads(log)[0]["data"]["trigger"]


def test_client_keeps_to_the_request_budget(project: tuple[Path, Emulator, str, Server]) -> None:
    _work, emu, _dsn, server = project
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    client = ManagementClient(TOKEN, server.url, limit=3, window=10.0, clock=lambda: now[0],
                              sleep=sleep)
    for _ in range(7):
        client.get(f"/projects/{EMU_REF}")
        now[0] += 0.5
    # 3 requests per 10 s: the 4th and the 7th wait for the oldest to leave the window
    assert slept == [8.5, 8.5] and client.waited == 17.0
    assert len([c for c in emu.calls if c == ("GET", f"/v1/projects/{EMU_REF}")]) == 7


def test_guided_drill_on_pro_daily_backups(project: tuple[Path, Emulator, str, Server]) -> None:
    """Without PITR the operator restores the daily backup, which is compared with the snapshot
    taken at or before it; with no such snapshot the drill says how to get one."""
    work, emu, _dsn, _server = project
    emu.projects[EMU_REF].pitr_enabled = False
    code, out, err = cli(work, "dr", "drill", "functional", "--yes", "--wait", "30")
    assert code == 3 and "to compare the daily backup" in out + err
    code, _out, err = cli(work, "dr", "snapshot")
    assert code == 0, err
    emu.projects[EMU_REF].provider.backup()       # tonight's backup, after it
    code, out, err = _guided_drill(work, emu, _pick_backup)
    assert code == 0, err + out
    result = json.loads(out)
    assert result["outcome"] == "pass" and "daily backup" in result["recovery_target"]
    assert result["instance"]["project_ref"] not in emu.projects


def test_status_and_runbook_of_a_supabase_environment(
        project: tuple[Path, Emulator, str, Server]) -> None:
    """After activation the drill is due within 30 days; status and the runbook read the
    Management API and the ledger, not a local cluster."""
    work, _emu, _dsn, _server = project
    config = work / "spectral.toml"
    config.write_text(config.read_text().replace('posture = "pitr"', 'posture = "pro"'))
    code, _out, err = cli(work, "dr", "activate-pitr", "--yes")
    assert code == 0, err
    code, out, err = cli(work, "dr", "status", "--json")
    assert code in (0, 1), err
    info = json.loads(out)
    assert info["posture"] == "pitr" and info["backup"]["state"] == "ok"
    assert info["wal"]["pitr_enabled"] is True
    functional = next(i for i in info["cadence"] if i["name"].startswith("Functional"))
    assert functional["due"] and "within 30 days of the activation" in functional["detail"]
    code, out, err = cli(work, "dr", "status")
    assert "PITR: enabled" in out
    code, text, err = cli(work, "dr", "runbook", "render")
    assert code == 0 and "Current tier: **pitr**" in text, err


def test_first_partner_checklist_reads_pitr_from_the_api(
        project: tuple[Path, Emulator, str, Server]) -> None:
    work, emu, _dsn, _server = project
    code, out, err = cli(work, "dr", "checklist", "first-partner", "--partner", "acme", "--json")
    assert code == 1, err                     # the partner's corpus and drill are still open
    items = {i["text"]: i for i in json.loads(out)}
    pitr = items["Supabase Pro + PITR active"]
    assert pitr["done"] and "organization plan pro" in pitr["evidence"]
    emu.projects[EMU_REF].pitr_enabled = False
    code, out, err = cli(work, "dr", "checklist", "first-partner", "--partner", "acme", "--json")
    pitr = {i["text"]: i for i in json.loads(out)}["Supabase Pro + PITR active"]
    assert code == 1 and not pitr["done"] and "pitr_enabled false" in pitr["evidence"]


def test_guided_drill_keeps_a_copy_it_cannot_reach(
        project: tuple[Path, Emulator, str, Server]) -> None:
    """A wrong connection string must not cost the restore: the copy is kept and the message
    says how to verify it; the rerun with --restored-ref verifies it and deletes it."""
    work, emu, _dsn, _server = project
    code, out, err = _guided_drill(work, emu, _pick_time, "--restored-dsn",
                                   "host=/nonexistent port=5432 user=postgres dbname=postgres")
    assert code == 3, err + out
    result = json.loads(out)
    kept = result["instance"]["project_ref"]
    assert result["kept"] and kept in emu.projects
    assert not any(m == "DELETE" for m, _p in emu.calls)
    rerun = re.search(r"--restored-ref (\S+) --target-time (\S+)", result["error"])
    assert rerun and rerun.group(1) == kept
    code, out, err = cli(work, "dr", "drill", "functional", "--restored-ref", kept,
                         "--target-time", rerun.group(2), "--yes", "--json")
    assert code == 0, err + out
    assert json.loads(out)["outcome"] == "pass" and kept not in emu.projects


def test_local_only_commands_name_the_supabase_way(
        project: tuple[Path, Emulator, str, Server]) -> None:
    work, _emu, _dsn, _server = project
    for args in (("dr", "backup"), ("dr", "wal", "status"), ("dr", "find-damage", "--table",
                                                               "core.notes")):
        code, _out, err = cli(work, *args)
        assert code == 2 and "Supabase" in err and "spectral dr " in err, err


def test_entitlements_decide_before_anything_is_requested(
        project: tuple[Path, Emulator, str, Server]) -> None:
    work, emu, _dsn, _server = project
    emu.denied = {"backup.restore_to_new_project"}
    code, _out, err = cli(work, "dr", "drill", "functional", "--yes", "--wait", "30")
    assert code == 2 and "entitlement backup.restore_to_new_project" in err
    assert "--branch" in err                              # what to do instead, in the hint
    emu.denied = {"project_cloning"}
    code, _out, err = cli(work, "dr", "drill", "functional", "--branch", "--yes")
    assert code == 2 and "entitlement project_cloning" in err
    assert not any(m == "POST" for m, _p in emu.calls)   # nothing was requested
    code, log, _ = cli(work, "dr", "log", "--kind", "drill", "--json")
    assert json.loads(log) == []                          # and nothing recorded
