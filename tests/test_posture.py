"""Posture: the sustained-change trigger on a real database with a controllable clock, the other
triggers, activation keeping the configuration's comments, and the first-partner checklist."""

from __future__ import annotations

import json
import signal
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from conftest import SPECTRAL, ClusterFactory, _processes_under, spectral
from spectral.config.models import EnvironmentConfig
from spectral.ledger import Entry, EntryKind
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect
from spectral.posture.samples import Sample, daily, take_sample
from spectral.posture.triggers import TriggerState, customer_launch, evaluate, sustained_change
from spectral.waits import wait_until

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def churn_db(make_cluster: ClusterFactory) -> Cluster:
    c = make_cluster()
    with c.connect() as conn:
        conn.execute("create schema core")
        conn.execute("create table core.t (id int primary key, v int not null default 0)")
        conn.execute("insert into core.t select g from generate_series(1, 1000) g")
        conn.execute("select pg_stat_force_next_flush()")
    return c


def change(c: Cluster, pct: int) -> None:
    with c.connect() as conn:
        conn.execute("update core.t set v = v + 1 where id <= %s", (pct * 10,))
        conn.execute("select pg_stat_force_next_flush()")


def sample_days(c: Cluster, plan: list[int | None], reset_on: int | None = None) -> list[Sample]:
    """One sample per day; `None` in the plan is a day nobody sampled."""
    out = []
    with c.connect() as conn:
        out.append(take_sample(conn, ["core"], T0))
    for i, pct in enumerate(plan, start=1):
        if reset_on == i:
            with c.connect() as conn:
                conn.execute("select pg_stat_reset()")
        if pct is None:
            continue
        change(c, pct)
        with c.connect() as conn:
            conn.execute("select pg_stat_clear_snapshot()")
            out.append(take_sample(conn, ["core"], T0 + timedelta(days=i)))
    return out


def state(samples: list[Sample]) -> TriggerState:
    return sustained_change(samples)[0].state


def test_fifteen_days_at_12_percent_fire(churn_db: Cluster) -> None:
    samples = sample_days(churn_db, [12] * 15)
    days = daily(samples)
    assert len(days) == 15 and all(abs((d.churn or 0) - 0.12) < 0.005 for d in days)
    assert state(samples) is TriggerState.FIRED


def test_fourteen_days_do_not(churn_db: Cluster) -> None:
    assert state(sample_days(churn_db, [12] * 14)) is TriggerState.NOT_FIRED


def test_a_day_at_9_percent_breaks_the_streak(churn_db: Cluster) -> None:
    samples = sample_days(churn_db, [12] * 8 + [9] + [12] * 8)
    trigger, _days = sustained_change(samples)
    assert trigger.state is TriggerState.NOT_FIRED
    assert "longest run above 10%: 8 day(s)" in trigger.evidence[0]


def test_a_statistics_reset_in_the_middle_is_handled(churn_db: Cluster) -> None:
    samples = sample_days(churn_db, [12] * 15, reset_on=7)
    trigger, days = sustained_change(samples)
    assert all(d.churn is not None and d.churn >= 0 for d in days)     # never negative
    assert any("statistics reset" in d.note for d in days)
    assert trigger.state is TriggerState.FIRED
    assert any(line.startswith("reset: ") for line in trigger.evidence)


def test_a_missing_day_is_reported_and_breaks_the_streak(churn_db: Cluster) -> None:
    samples = sample_days(churn_db, [12] * 8 + [None] + [12] * 8)
    trigger, days = sustained_change(samples)
    gap_day = (T0 + timedelta(days=9)).date()
    assert any(d.day == gap_day and d.churn is None for d in days)
    assert f"missing day: {gap_day} (no sample)" in trigger.evidence
    assert trigger.state is TriggerState.NOT_FIRED


def test_other_triggers_from_ledger_and_config() -> None:
    env = EnvironmentConfig.model_validate({"provider": "local", "posture": "pro",
                                            "launch_date": "2026-04-01"})
    assert customer_launch(env, date(2026, 3, 1)).state is TriggerState.NOT_FIRED
    assert customer_launch(env, date(2026, 4, 1)).state is TriggerState.FIRED
    incident = Entry(1, T0, EntryKind.INCIDENT, "local",
                     {"playbook": "compromised-credential", "summary": "key in a log",
                      "near_miss": True, "pitr_covered": False}, "", "")
    found, _days, must = evaluate(env, None, [incident], [], date(2026, 3, 1))
    by = {t.name: t.state for t in found}
    assert by["compromised-credential incident or near-miss"] is TriggerState.FIRED
    assert by["first PITR-covered failure"] is TriggerState.NOT_FIRED
    assert by["first partner data"] is TriggerState.UNKNOWN
    assert must is True


CONFIG = """\
# Spectral DR configuration (hand-edited; keep these comments)
default_environment = "local"

[environments.local]
provider = "local"   # the embedded default
posture = "pro"      # raised from alpha when the first partner signed
# load-bearing tables the drills spot-check:
load_bearing_tables = ["core.users", "worlds.returns", "platform.rules"]
"""


@pytest.mark.server
def test_activation_checks_keeps_comments_and_makes_a_drill_due(work_dir: Path) -> None:
    assert spectral("demo", cwd=work_dir).returncode == 0   # seeded while still alpha
    (work_dir / "spectral.toml").write_text(CONFIG)
    assert spectral("local", "up", cwd=work_dir).returncode == 0
    stream = None
    try:
        res = spectral("dr", "activate-pitr", cwd=work_dir)       # no WAL stream yet
        assert res.returncode == 1 and "PITR enabled: continuous WAL streaming" in res.stderr
        assert (work_dir / "spectral.toml").read_text() == CONFIG
        stream = subprocess.Popen([SPECTRAL, "dr", "wal", "stream", "--seconds", "120"],
                                  cwd=work_dir, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        dsn = json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)["dsn"]

        def streaming() -> bool:
            with connect(dsn) as conn:
                return conn.execute("select count(*) from pg_stat_replication where "
                                    "application_name = 'spectral_stream'").fetchone() == (1,)

        wait_until(streaming, timeout=30, what="the WAL stream")
        res = spectral("dr", "activate-pitr", "--trigger", "first partner data", cwd=work_dir)
        assert res.returncode == 0, res.stderr
        text = (work_dir / "spectral.toml").read_text()
        assert text == CONFIG.replace('"pro"', '"pitr"')     # every comment and space kept
        log = json.loads(spectral("dr", "log", "--kind", "activation", "--json",
                                  cwd=work_dir).stdout)
        assert log[0]["data"]["trigger"] == "first partner data"
        status = json.loads(spectral("dr", "status", "--json", cwd=work_dir).stdout)
        functional = next(i for i in status["cadence"]
                          if i["name"] == "Functional restore drill")
        assert "within 30 days of the activation" in functional["detail"]
        assert status["posture"] == "pitr"
    finally:
        if stream is not None:
            stream.send_signal(signal.SIGINT)
            stream.wait(timeout=60)
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


@pytest.mark.server
def test_first_partner_checklist(work_dir: Path) -> None:
    assert spectral("demo", cwd=work_dir).returncode == 0
    res = spectral("dr", "checklist", "first-partner", "--partner", "acme-tax", "--json",
                   cwd=work_dir)
    assert res.returncode == 1
    first = {i["text"].split(":")[0]: i for i in json.loads(res.stdout)}
    planned = first.pop("provider exit planned")      # the reference has a plan for each
    assert planned["done"] and "auth.users" in planned["evidence"], planned
    assert not any(i["done"] for i in first.values())
    assert spectral("local", "up", cwd=work_dir).returncode == 0
    try:
        dsn = json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)["dsn"]
        from spectral.refdb.author import partner_corpus

        with connect(dsn) as conn:
            partner_corpus(conn, "acme-tax", rules=50)
        assert spectral("db", "export-rules", "--partner", "acme-tax", cwd=work_dir).returncode \
            == 0
        assert spectral("db", "rules-hook", "install", cwd=work_dir).returncode == 0
        assert spectral("dr", "drill", "functional", cwd=work_dir).returncode == 0
        res = spectral("dr", "checklist", "first-partner", "--partner", "acme-tax", "--json",
                       cwd=work_dir)
        items = {i["text"]: i for i in json.loads(res.stdout)}
        assert res.returncode == 1                              # PITR is not active yet
        assert not items["Supabase Pro + PITR active"]["done"]
        others = [i for t, i in items.items() if t != "Supabase Pro + PITR active"]
        assert all(i["done"] for i in others), others
        with connect(dsn) as conn:        # the round trip was rolled back: still 50 rules
            assert conn.execute("select count(*) from platform.rules r join platform.corpora c "
                                "on c.id = r.corpus_id where c.owner = 'partner'"
                                ).fetchone() == (50,)
    finally:
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


def test_partner_data_query_is_configurable(churn_db: Cluster) -> None:
    env = EnvironmentConfig.model_validate({
        "provider": "local", "partner_data_query": "select id from core.t where v > 0"})
    with churn_db.connect() as conn:
        found, _days, _must = evaluate(env, conn, [], [], date(2026, 3, 1))
        assert found[0].state is TriggerState.NOT_FIRED
        change(churn_db, 1)
        found, _days, must = evaluate(env, conn, [], [], date(2026, 3, 1))
    assert found[0].state is TriggerState.FIRED and must
    assert found[0].evidence[0] == "partner data: 1"
