"""Playbooks on real clusters: a DROP of platform.rules found and undone by the schema-drop
playbook with the core contract verified (provider-failure: tests/test_provider_exit.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import _processes_under, spectral
from spectral.pg.conn import connect

PITR = ('[environments.local]\nprovider = "local"\nposture = "pitr"\n\n'
        '[environments.local.contract]\ntables = ["core.orgs", "core.users", "core.partners"]\n'
        'referenced_by = ["worlds", "platform"]\n')


def setup(work_dir: Path) -> str:
    assert spectral("demo", cwd=work_dir).returncode == 0   # seeded, backed up, snapshot taken
    (work_dir / "spectral.toml").write_text(PITR)
    assert spectral("local", "up", cwd=work_dir).returncode == 0
    return str(json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)["dsn"])


@pytest.mark.server
def test_schema_drop_found_restored_and_contract_verified(work_dir: Path) -> None:
    dsn = setup(work_dir)
    try:
        res = spectral("dr", "playbook", "show", "schema-drop", cwd=work_dir)
        assert "Rewind in place to just before the DROP" in res.stdout
        with connect(dsn) as conn:
            rules = conn.execute("select count(*) from platform.rules").fetchone()
            conn.execute("drop table platform.rules cascade")
        res = spectral("dr", "find-damage", "--table", "platform.rules", "--json", cwd=work_dir)
        assert res.returncode == 0, res.stderr
        drops = json.loads(res.stdout)
        assert [d["op"] for d in drops] == ["drop"]
        plan = spectral("dr", "playbook", "run", "schema-drop", "--table", "platform.rules",
                        "--dry-run", "--json", cwd=work_dir)
        assert plan.returncode == 0, plan.stderr
        assert all(s["outcome"] == "planned" for s in json.loads(plan.stdout)["steps"])
        with connect(dsn) as conn:                       # the dry run changed nothing
            assert conn.execute("select to_regclass('platform.rules')").fetchone() == (None,)
        res = spectral("dr", "playbook", "run", "schema-drop", "--table", "platform.rules",
                       cwd=work_dir)                     # no terminal, no --yes: refused
        assert res.returncode == 2 and "nothing was changed" in res.stderr
        with connect(dsn) as conn:
            assert conn.execute("select to_regclass('platform.rules')").fetchone() == (None,)
        res = spectral("dr", "playbook", "run", "schema-drop", "--table", "platform.rules",
                       "--yes", "--operator", "oncall", "--json", cwd=work_dir)
        assert res.returncode == 0, res.stdout + res.stderr
        run = json.loads(res.stdout)
        assert [s["outcome"] for s in run["steps"]] == ["done", "done"]
        assert "contract intact" in run["steps"][1]["detail"]
        with connect(dsn) as conn:
            assert conn.execute("select count(*) from platform.rules").fetchone() == rules
        log = json.loads(spectral("dr", "log", "--kind", "incident", "--json",
                                  cwd=work_dir).stdout)
        assert log[0]["data"]["playbook"] == "schema-drop"
        assert log[0]["data"]["operator"] == "oncall"
    finally:
        spectral("dr", "teardown", "--all", cwd=work_dir)
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


@pytest.mark.server
def test_self_inflicted_pitr_and_compromised_credential_runs(work_dir: Path) -> None:
    dsn = setup(work_dir)
    try:
        with connect(dsn, autocommit=False) as conn:
            conn.execute("delete from worlds.returns where id <= 25")
            xid = conn.execute("select txid_current()").fetchone()[0]  # type: ignore[index]
            conn.commit()
        with connect(dsn) as conn:                       # a later write to another table
            conn.execute("insert into core.audit_events (action, entity, entity_id) "
                         "values ('later', 'test', '1')")
        plan = spectral("dr", "playbook", "run", "self-inflicted", "--table", "worlds.returns",
                        "--dry-run", "--json", cwd=work_dir)
        assert plan.returncode == 0, plan.stderr
        run = json.loads(plan.stdout)
        assert run["outcome"] == "planned"
        rewind = run["steps"][1]["detail"]               # the resolved target and the losses
        assert f"--target-xid {xid} --exclusive" in rewind
        assert "worlds.returns 25 row(s)" in rewind and "core.audit_events 1 row(s)" in rewind
        assert f"spectral dr salvage --table worlds.returns --before-xid {xid}" in rewind
        res = spectral("dr", "playbook", "run", "self-inflicted", "--table", "worlds.returns",
                       "--yes", "--json", cwd=work_dir)
        assert res.returncode == 0, res.stdout + res.stderr
        steps = json.loads(res.stdout)["steps"]
        assert steps[0]["detail"].startswith("damaging transaction ")
        with connect(dsn) as conn:
            assert conn.execute("select count(*) from worlds.returns").fetchone() == (4000,)
        res = spectral("dr", "playbook", "run", "compromised-credential", "--role", "postgres",
                       cwd=work_dir)     # manual steps need a terminal or --yes
        assert res.returncode == 2 and "--yes confirms non-interactively" in res.stderr
        res = spectral("dr", "playbook", "run", "nope", cwd=work_dir)
        assert res.returncode == 2
    finally:
        spectral("dr", "teardown", "--all", cwd=work_dir)
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []
