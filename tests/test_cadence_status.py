"""Cadence, status (the dead-man's switch), the tabletop review and the rendered runbook."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest

from conftest import _processes_under, spectral
from spectral.config.models import EnvironmentConfig, Posture
from spectral.drills.cadence import ItemState, cadence
from spectral.ledger import Entry, EntryKind
from spectral.pg.conn import connect

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def entry(seq: int, kind: EntryKind, days_ago: float, **data: object) -> Entry:
    return Entry(seq, NOW - timedelta(days=days_ago), kind, "local", dict(data), "", "")


def states(posture: Posture, entries: list[Entry],
           changed: list[str] | None = None) -> dict[str, ItemState]:
    env = EnvironmentConfig.model_validate({"provider": "local", "posture": posture.value})
    return {i.name: i.state for i in cadence(env, entries, NOW, changed or [])}


def test_tabletop_is_monthly() -> None:
    assert states(Posture.ALPHA, [])["Tabletop review"] is ItemState.OVERDUE
    assert states(Posture.ALPHA, [entry(1, EntryKind.TABLETOP, 29)])["Tabletop review"] \
        is ItemState.OK
    assert states(Posture.ALPHA, [entry(1, EntryKind.TABLETOP, 31)])["Tabletop review"] \
        is ItemState.OVERDUE


def test_functional_drill_is_quarterly_once_on_pro() -> None:
    key = "Functional restore drill"
    assert states(Posture.ALPHA, [])[key] is ItemState.NOT_REQUIRED
    assert states(Posture.PRO, [])[key] is ItemState.OVERDUE
    passed = entry(1, EntryKind.DRILL, 80, type="functional", outcome="pass")
    assert states(Posture.PRO, [passed])[key] is ItemState.OK
    old = entry(1, EntryKind.DRILL, 95, type="functional", outcome="pass")
    assert states(Posture.PITR, [old])[key] is ItemState.OVERDUE
    failed = entry(2, EntryKind.DRILL, 1, type="functional", outcome="fail")
    assert states(Posture.PITR, [old, failed])[key] is ItemState.OVERDUE   # a fail is not done


def test_activation_sets_a_drill_due_within_30_days() -> None:
    key = "Functional restore drill"
    recent = entry(1, EntryKind.ACTIVATION, 10)
    assert states(Posture.PITR, [recent])[key] is ItemState.OK
    late = entry(1, EntryKind.ACTIVATION, 31)
    assert states(Posture.PITR, [late])[key] is ItemState.OVERDUE


def test_multi_schema_migration_makes_post_migration_drill_overdue() -> None:
    key = "Post-migration drill"
    assert states(Posture.ALPHA, [], ["worlds"])[key] is ItemState.OK
    assert states(Posture.ALPHA, [], ["platform", "worlds"])[key] is ItemState.OVERDUE


@pytest.fixture
def drilled(work_dir: Path) -> Iterator[Path]:
    assert spectral("demo", cwd=work_dir).returncode == 0
    yield work_dir
    spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


def test_status_is_a_dead_mans_switch(drilled: Path) -> None:
    prom = drilled / "dr.prom"
    junit = drilled / "status.xml"
    res = spectral("dr", "status", "--prom-file", str(prom), "--junit", str(junit),
                   cwd=drilled)
    assert res.returncode == 1 and "overdue: Tabletop review" in res.stdout
    text = prom.read_text()
    assert 'spectral_dr_overdue{environment="local",item="Tabletop review"} 1.0' in text
    failed = [c.get("name") for c in ElementTree.parse(junit).iter("testcase")
              if c.find("failure") is not None]
    assert "Tabletop review" in failed and "Functional restore drill" not in failed
    assert "spectral_dr_rto_seconds" in text and "spectral_dr_ok" in text
    answers = drilled / "answers.toml"
    answers.write_text('participants = ["ana", "raj"]\nfindings = ["op ref is stale"]\n'
                       'action_items = ["rotate it"]\n[[steps]]\nnote = "re-seed works"\n')
    res = spectral("dr", "tabletop", "--scenario", "schema-drop", "--answers", str(answers),
                   "--json", cwd=drilled)
    assert res.returncode == 0, res.stderr
    recorded = json.loads(res.stdout)
    assert recorded["participants"] == ["ana", "raj"] and recorded["steps"][0]["note"]
    res = spectral("dr", "status", "--json", cwd=drilled)
    assert res.returncode == 0, res.stdout
    assert json.loads(res.stdout)["last_drill"]["outcome"] == "pass"


def test_tabletop_bad_input(drilled: Path) -> None:
    res = spectral("dr", "tabletop", cwd=drilled)
    assert res.returncode == 2 and "needs a terminal" in res.stderr
    bad = drilled / "bad.toml"
    bad.write_text('participants = []\n')
    res = spectral("dr", "tabletop", "--answers", str(bad), cwd=drilled)
    assert res.returncode == 2 and "participants" in res.stderr
    res = spectral("dr", "tabletop", "--scenario", "nope", "--answers", str(bad), cwd=drilled)
    assert res.returncode == 2


def test_runbook_render_lists_the_drill(drilled: Path) -> None:
    out = drilled / "RUNBOOK.md"
    assert spectral("dr", "runbook", "render", "--out", str(out), cwd=drilled).returncode == 0
    text = out.read_text()
    for heading in ("## Posture", "## Raising the posture tier", "## Restore playbooks",
                    "## Drill cadence", "## First-partner checklist", "## Runbook history"):
        assert heading in text
    history = text.split("## Runbook history", 1)[1]
    assert "functional drill: **PASS**" in history
    assert "Current tier: **alpha**" in text


def test_drill_due_after_a_multi_schema_migration(drilled: Path) -> None:
    assert spectral("dr", "drill", "due", cwd=drilled).returncode == 0
    assert spectral("local", "up", cwd=drilled).returncode == 0
    dsn = json.loads(spectral("local", "status", "--json", cwd=drilled).stdout)["dsn"]
    with connect(dsn) as conn:
        conn.execute("alter table worlds.forms add column reviewed boolean")
        conn.execute("alter table platform.rules add column reviewed boolean")
    res = spectral("dr", "drill", "due", "--json", cwd=drilled)
    assert res.returncode == 1
    assert "platform, worlds" in json.loads(res.stdout)["detail"]
    assert spectral("dr", "drill", "post-migration", cwd=drilled).returncode == 0
    assert spectral("dr", "drill", "due", cwd=drilled).returncode == 0
