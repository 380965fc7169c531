"""The library without the command line: the README's Python example, a playbook and posture,
called directly on a real local environment."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import README_PATH, notes_environment, spectral
from spectral.confirm import AssumeYes
from spectral.errors import CheckFailed
from spectral.ledger import EntryKind
from spectral.pg.binaries import PgBinaries
from spectral.pg.conn import connect
from spectral.playbooks.plan import Options, Plan
from spectral.playbooks.runner import RunOutcome, StepOutcome, run_playbook
from spectral.posture.activate import activate
from spectral.posture.checklist import pitr_active


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


@pytest.mark.server
def test_the_readme_python_example_runs(work_dir: Path) -> None:
    blocks = _python_blocks(README_PATH.read_text())
    assert len(blocks) == 1
    assert spectral("demo", cwd=work_dir).returncode == 0   # seeded and backed up
    res = subprocess.run([sys.executable, "-c", blocks[0]], cwd=work_dir, capture_output=True,
                         text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.strip().splitlines()[-1].startswith("pass RTO ")


@pytest.mark.server
def test_a_playbook_from_python_finds_the_damage_and_rewinds(work_dir: Path,
                                                             bins: PgBinaries) -> None:
    with notes_environment(work_dir) as environment:
        dsn = environment.provider.running_source()
        assert dsn is not None
        with connect(dsn) as conn:
            conn.execute("insert into core.notes select g, 'n' from generate_series(2, 20) g")
        time.sleep(1.1)
        with connect(dsn) as conn:
            conn.execute("delete from core.notes where id > 10")
        plan = Plan(environment, dsn, AssumeYes(), Options(table="core.notes"))
        dry = run_playbook(plan, "self-inflicted", dry_run=True, report=lambda _m: None)
        assert dry.outcome is RunOutcome.PLANNED and "--target-xid" in dry.steps[1].detail
        done = run_playbook(plan, "self-inflicted", dry_run=False, report=lambda _m: None)
        assert done.outcome is RunOutcome.DONE, done.to_json()
        assert [s.outcome for s in done.steps] == [StepOutcome.DONE] * 3
        with connect(dsn) as conn:
            assert conn.execute("select count(*) from core.notes").fetchone() == (20,)
        incident = environment.ledger.entries()[-1]
        assert incident.kind is EntryKind.INCIDENT and incident.data["outcome"] == "done"


@pytest.mark.server
def test_posture_from_python_checks_before_it_changes_anything(work_dir: Path,
                                                               bins: PgBinaries) -> None:
    with notes_environment(work_dir, posture="pro") as environment:
        before = (work_dir / "spectral.toml").read_text()
        with pytest.raises(CheckFailed, match="continuous WAL streaming"):
            activate(environment, "manual")           # a backup, but no WAL stream
        assert (work_dir / "spectral.toml").read_text() == before
        assert not [e for e in environment.ledger.entries() if e.kind is EntryKind.ACTIVATION]
        item = pitr_active(environment)
        assert not item.done and "verified base backup" in item.evidence
