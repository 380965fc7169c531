"""Functional drills on real clusters: a clean drill passes with RTO and RPO in the ledger; a
restore that differs fails and names the difference; faults never pass."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import SPECTRAL, _processes_under, spectral
from spectral.pg.conn import connect
from spectral.waits import wait_until


@pytest.fixture
def ready(work_dir: Path) -> Iterator[Path]:
    """A seeded, backed-up local environment (the demo does exactly that, plus one drill)."""
    assert spectral("demo", cwd=work_dir).returncode == 0
    yield work_dir
    spectral("dr", "teardown", "--all", cwd=work_dir)
    spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


def drill(work: Path, *args: str) -> tuple[int, dict]:
    res = spectral("dr", "drill", "functional", "--json", *args, cwd=work)
    return res.returncode, json.loads(res.stdout) if res.stdout.strip() else {"err": res.stderr}


def test_clean_drill_passes_and_is_in_the_ledger(ready: Path) -> None:
    code, result = drill(ready, "--content")
    assert code == 0, result
    names = {c["name"]: c["outcome"] for c in result["checks"]}
    assert names["contract (core.orgs, core.users, core.partners; referenced by worlds, "
                 "platform)"] == "pass"
    assert names["content checksums of every table"] == "pass"
    assert result["rto_seconds"] > 0 and result["rpo_seconds"] == 0
    assert set(result["timings"]) >= {"provision", "restore", "verify", "teardown",
                                      "snapshot_scan", "verify_scan"}
    assert result["timings"]["verify_scan"] <= result["timings"]["verify"]
    log = json.loads(spectral("dr", "log", "--kind", "drill", "--json", cwd=ready).stdout)
    assert log[0]["data"]["outcome"] == "pass" and log[0]["data"]["rto_seconds"] > 0
    assert spectral("dr", "log", "verify", cwd=ready).returncode == 0
    assert json.loads(spectral("dr", "instances", "--json", cwd=ready).stdout) == []


def test_schema_changed_after_the_snapshot_fails_and_names_it(ready: Path) -> None:
    assert spectral("dr", "snapshot", cwd=ready).returncode == 0
    assert spectral("local", "up", cwd=ready).returncode == 0
    dsn = json.loads(spectral("local", "status", "--json", cwd=ready).stdout)["dsn"]
    with connect(dsn) as conn:
        conn.execute("alter table worlds.forms add column reviewer text")
        conn.execute("delete from worlds.returns where id <= 10")
    time.sleep(1.1)
    target = datetime.now(UTC).isoformat()
    time.sleep(0.5)
    with connect(dsn) as conn:
        conn.execute("select pg_switch_wal()")
    code, result = drill(ready, "--target-time", target)
    assert code == 1, result
    assert result["outcome"] == "fail"
    evidence = [e for c in result["checks"] for e in c["evidence"]]
    assert any("worlds.forms.reviewer: column added" in e for e in evidence)
    assert any(e.startswith("worlds.returns: 3990 rows, mismatch") for e in evidence)
    text = spectral("dr", "drill", "functional", "--target-time", target, cwd=ready).stdout
    assert "FAIL" in text and "worlds.forms.reviewer: column added" in text


def test_unlogged_load_bearing_table_fails_the_drill(ready: Path) -> None:
    """A classic silent data loss: an UNLOGGED table is empty after any restore."""
    (ready / "spectral.toml").write_text(
        '[environments.local]\nprovider = "local"\n'
        'load_bearing_tables = ["core.users", "worlds.returns", "core.feature_flags"]\n')
    assert spectral("local", "up", cwd=ready).returncode == 0
    dsn = json.loads(spectral("local", "status", "--json", cwd=ready).stdout)["dsn"]
    with connect(dsn) as conn:
        conn.execute("create unlogged table core.feature_flags (name text primary key)")
        conn.execute("insert into core.feature_flags select 'flag' || g "
                     "from generate_series(1, 25) g")
    code, result = drill(ready)
    assert code == 1 and result["outcome"] == "fail"
    evidence = [e for c in result["checks"] for e in c["evidence"]]
    assert any(e.startswith("core.feature_flags: 0 rows, mismatch (rows 25 -> 0)")
               for e in evidence), evidence


def test_corrupted_backup_never_passes(ready: Path) -> None:
    backups = json.loads(spectral("dr", "backups", "--json", cwd=ready).stdout)["backups"]
    base = ready / ".spectral" / "local" / "backups" / "base" / backups[-1]["id"]
    # a relation's file (the backup's pg_wal is checked by pg_waldump: a WAL it cannot read
    # proves no file damaged, and stays could-not-verify)
    victim = max((p for p in (base / "base").rglob("*") if p.is_file()),
                 key=lambda p: p.stat().st_size)
    raw = bytearray(victim.read_bytes())
    raw[100] ^= 0xFF
    victim.write_bytes(bytes(raw))
    code, result = drill(ready)
    assert code == 1 and result["outcome"] == "fail"   # proven damaged: a FAIL, named
    assert f"backup {backups[-1]['id']} is damaged" in result["error"]
    assert result["backup_id"] == backups[-1]["id"]
    name = victim.relative_to(base)
    [check] = [c for c in result["checks"] if c["outcome"] == "fail"]
    assert check["name"] == "backup matches its manifest"
    assert check["evidence"] == [f'checksum mismatch for file "{name}"']


def test_drill_without_backups_says_so_and_exits_3(work_dir: Path) -> None:
    code, result = drill(work_dir)
    assert code == 3 and "has no backups" in result["error"]
    assert "(spectral dr backup)" in result["error"]      # the hint was dropped (session 11)
    spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


def test_killed_drill_leaves_an_orphan_the_next_run_removes(ready: Path) -> None:
    instances = ready / ".spectral" / "local" / "instances"
    proc = subprocess.Popen([SPECTRAL, "dr", "drill", "functional"], cwd=ready,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: instances.is_dir() and any(p.name.startswith("r")
                                                  for p in instances.iterdir()),
               timeout=60, interval=0.01, what="a restore in progress")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    code, result = drill(ready)
    assert code == 0, result
    assert [p for p in instances.iterdir()] == []
    assert spectral("dr", "log", "verify", cwd=ready).returncode == 0


def test_tampered_ledger_is_detected(ready: Path) -> None:
    ledger = ready / ".spectral" / "local" / "evidence" / "ledger.jsonl"
    text = ledger.read_text().replace('"outcome": "pass"', '"outcome": "fail"', 1)
    ledger.write_text(text)
    res = spectral("dr", "log", "verify", cwd=ready)
    assert res.returncode == 1 and "was edited" in res.stdout


def test_drill_killed_during_verify_is_cleaned_up_by_the_next(ready: Path) -> None:
    instances = ready / ".spectral" / "local" / "instances"

    def verifying() -> bool:
        for meta in instances.glob("*/instance.json") if instances.is_dir() else []:
            try:
                if json.loads(meta.read_text()).get("state") == "ready":
                    return True
            except ValueError:
                continue
        return False

    proc = subprocess.Popen([SPECTRAL, "dr", "drill", "functional", "--content"], cwd=ready,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(verifying, timeout=60, interval=0.005, max_interval=0.005,
               what="the verify phase")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    code, result = drill(ready)
    assert code == 0, result
    assert list(instances.iterdir()) == []
    assert spectral("dr", "log", "verify", cwd=ready).returncode == 0


def test_keep_leaves_the_instance_up_and_the_next_drill_leaves_it_alone(ready: Path) -> None:
    code, result = drill(ready, "--keep")
    assert code == 0 and result["kept"] is True
    with connect(result["instance"]["dsn"]) as conn:
        assert conn.execute("select count(*) from worlds.returns").fetchone() == (4000,)
    assert drill(ready)[0] == 0
    listed = json.loads(spectral("dr", "instances", "--json", cwd=ready).stdout)
    assert [i["id"] for i in listed] == [result["instance"]["id"]] and listed[0]["running"]
