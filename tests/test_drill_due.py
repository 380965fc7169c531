"""`spectral dr drill due --all [--run]`, docs/scheduling.md's one job: a local environment whose
functional drill is due is drilled (PASS), one that cannot verify is drilled and alerted, one
whose copy needs a person stays due and is named; the exit code is the worst."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import notes_environment, spectral
from test_alerts import Hook


def _due(work: Path, env: dict[str, str], *args: str) -> tuple[int, dict[str, dict[str, Any]]]:
    res = spectral("dr", "drill", "due", "--all", *args, "--json", cwd=work, env=env)
    doc = json.loads(res.stdout)
    assert doc["exit_code"] == res.returncode, res.stderr
    return res.returncode, {e["name"]: e for e in doc["environments"]}


def test_the_worst_exit_wins() -> None:
    from datetime import UTC, datetime

    from spectral.drills.due import DueAction, DueEnvironment, DueRun
    from spectral.errors import ExitCode

    def run(*due: list[str]) -> ExitCode:
        return DueRun(datetime.now(UTC), False, [
            DueEnvironment("e", d, DueAction.DUE if d else DueAction.NOT_DUE)
            for d in due]).exit_code

    assert run([], []) is ExitCode.OK and run() is ExitCode.OK
    assert run([], ["Post-migration drill"]) is ExitCode.CHECK_FAILED


def test_an_environment_whose_evidence_cannot_be_read_is_not_nothing_due(tmp_path: Path) -> None:
    """Its ledger says what is due; unreadable, nothing is known: could-not-verify (exit 3), not
    'nothing due' (exit 0, and a scheduled job that stays green)."""
    (tmp_path / "spectral.toml").write_text(
        '[environments.lost]\nprovider = "local"\nposture = "pro"\nstate_dir = "lost"\n')
    (tmp_path / "lost").mkdir()
    (tmp_path / "lost" / "evidence").write_text("not a folder\n")
    for args in ((), ("--run",)):
        code, rows = _due(tmp_path, {}, *args)
        assert code == 3 and rows["lost"]["action"] == "could_not_verify", rows
        assert "evidence store" in rows["lost"]["reason"], rows
    res = spectral("dr", "drill", "due", "--all", cwd=tmp_path)
    assert res.returncode == 3 and "lost: could not verify (" in res.stdout, res.stdout


def test_a_drill_another_run_did_meanwhile_is_not_run_again(tmp_path: Path) -> None:
    """Two scheduled `dr drill due --all --run` at once: the second judged the drill due, waited
    for the first's lock and then drilled again. What is due is judged again under the lock."""
    import os
    import subprocess
    import time

    from conftest import SPECTRAL
    from spectral.envlock import operation_lock
    from spectral.ledger import EntryKind, Ledger

    (tmp_path / "spectral.toml").write_text(
        '[environments.local]\nprovider = "local"\nposture = "pro"\nstate_dir = "st"\n')
    state = tmp_path / "st"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTRAL_TEST")}
    with operation_lock(state, "the other run"):
        proc = subprocess.Popen([SPECTRAL, "dr", "drill", "due", "--all", "--run", "--json"],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert proc.stderr is not None
        deadline, said = time.monotonic() + 60, ""
        while "waiting for" not in said and time.monotonic() < deadline:
            said += proc.stderr.readline() or ("" if proc.poll() is None else "exited")
            assert "exited" not in said, said
        assert "waiting for" in said, said
        Ledger(state / "evidence").append(EntryKind.DRILL, "local",
                                          {"type": "functional", "outcome": "pass"})
    out, err = proc.communicate(timeout=120)
    row = json.loads(out)["environments"][0]
    assert proc.returncode == 0 and row["action"] == "not_due", (said, err, row["reason"])
    assert "running a functional drill" not in said + err


@pytest.mark.server
def test_drill_what_is_due_in_every_environment(work_dir: Path) -> None:
    hook = Hook()
    try:
        with notes_environment(work_dir) as staging:
            conninfo = staging.provider.running_source()
            with (work_dir / "spectral.toml").open("a") as f:
                f.write('[environments.preview]\nprovider = "local"\nposture = "pro"\n'
                        'schemas = ["core"]\nload_bearing_tables = []\n'
                        '[environments.reports]\nprovider = "dsn"\nposture = "pro"\n'
                        f'dsn = "{conninfo}"\n'
                        '[alerts.webhooks.oncall]\nurl = "env:HOOK_ONCALL"\n')
            env = {"HOOK_ONCALL": hook.url("oncall")}
            _listed_then_drilled(work_dir, env, hook)
    finally:
        hook.close()


def _listed_then_drilled(work: Path, env: dict[str, str], hook: Hook) -> None:
    code, rows = _due(work, env)                  # listed only: nothing runs
    assert code == 1 and {n: r["action"] for n, r in rows.items()} == {
        "staging": "due", "preview": "due", "reports": "due"}
    assert all(r["due"] == ["Functional restore drill"] for r in rows.values())
    assert not hook.bodies
    code, rows = _due(work, env, "--run")
    assert code == 1                              # reports is still due: a person drills it
    staging, preview, reports = rows["staging"], rows["preview"], rows["reports"]
    assert staging["action"] == "drilled" and staging["drill"]["outcome"] == "pass", staging
    assert preview["action"] == "drilled" and preview["exit_code"] == 3
    assert "no backups" in preview["drill"]["error"]
    assert reports["action"] == "not_run" and reports["drill"] is None
    assert reports["reason"] == ("its copy needs a person: spectral --env reports dr drill "
                                 "functional")
    assert [(b["environment"], b["event"]) for b in hook.bodies] == [
        ("preview", "could_not_verify")]          # alerted as a drill alerts
    assert hook.bodies[0]["drill"]["outcome"] == "could_not_verify"
    for name, outcome in (("staging", "pass"), ("preview", "could_not_verify")):
        log = spectral("--env", name, "dr", "log", "--kind", "drill", "--json", cwd=work)
        assert [e["data"]["outcome"] for e in json.loads(log.stdout)] == [outcome]
    code, rows = _due(work, env)                  # the next run: staging's drill is done
    assert rows["staging"]["action"] == "not_due" and rows["preview"]["action"] == "due"
    alone = spectral("dr", "drill", "due", "--run", cwd=work, env=env)
    assert alone.returncode == 2 and "--run goes with --all" in alone.stderr
