"""A database no one here wrote the tool for (tests/second_world.sql): protected schema
`public`, a two-table contract, partitions, materialized views, domains, enums, arrays,
tsvector, RLS and a publication. Its fingerprint is stable across a dump and restore, changes
of every kind are found in the right schema, and a drill on it passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ClusterFactory, _processes_under, spectral
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect, with_dbname
from spectral.runner import run
from spectral.verify.compare import Outcome, compare
from spectral.verify.fingerprint import Options, take

WORLD = (Path(__file__).parent / "second_world.sql").read_text()
CONFIG = """[environments.shop]
provider = "local"
database = "shop"
posture = "pitr"
schemas = ["public"]
load_bearing_tables = ["public.customers", "public.orders", "public.events"]

[environments.shop.contract]
tables = [{ name = "public.customers", columns = ["id", "email"], rls = true }, "public.orders"]
referenced_by = ["public.orders", "public.payments"]
"""
CHANGES = [
    ("enum label added", "alter type order_status add value 'refunded'"),
    ("domain check changed", "alter domain email drop constraint email_check"),
    ("partition detached", "alter table events detach partition events_2026"),
    ("materialized view populated", "refresh materialized view later"),
    ("policy changed", "alter policy own_rows on customers using (true)"),
    ("RLS disabled", "alter table customers disable row level security"),
    ("publication dropped", "drop publication shop_orders"),
    ("trigger disabled", "alter table orders disable trigger orders_touch"),
    ("function body changed", "create or replace function touch() returns trigger language "
                              "plpgsql as $$ begin new.last_update := clock_timestamp(); "
                              "return new; end $$"),
    ("gin index dropped", "drop index orders_search"),
    ("generated column dropped", "alter table orders drop column search"),
    ("array default changed", "alter table customers alter column tags set default '{x}'"),
    ("view changed", "create or replace view open_orders as select id, customer_id, total "
                     "from orders where status in ('new', 'paid')"),
    ("replica identity full", "alter table payments replica identity full"),
]


@pytest.fixture
def world(make_cluster: ClusterFactory) -> tuple[Cluster, str]:
    c = make_cluster()
    with c.connect() as conn:
        conn.execute("create database shop")
    dsn = with_dbname(c.conninfo(), "shop")
    with connect(dsn) as conn:
        conn.execute(WORLD.encode())
    return c, dsn


def fp(dsn: str, content: bool = False) -> dict:  # type: ignore[type-arg]
    return take(dsn, Options(("public",), content=content))


def test_stable_across_dump_and_restore(world: tuple[Cluster, str], bins: PgBinaries,
                                        work_dir: Path) -> None:
    c, dsn = world
    with c.connect() as conn:
        conn.execute("create database copy")
    copy = with_dbname(c.conninfo(), "copy")
    dump = work_dir / "shop.dump"
    run([bins.path("pg_dump"), "-Fc", "-f", str(dump), dsn], timeout=300)
    run([bins.path("pg_restore"), "--exit-on-error", "-d", copy, str(dump)], timeout=300)
    cmp = compare(fp(dsn, content=True), fp(copy, content=True))
    assert cmp.outcome is Outcome.MATCH, cmp.to_json()


def test_at_least_ten_kinds_of_change_are_found(world: tuple[Cluster, str]) -> None:
    assert len(CHANGES) >= 10
    _c, dsn = world
    base = fp(dsn)
    missed = []
    for name, ddl in CHANGES:
        with connect(dsn, autocommit=False) as conn:
            before = fp(dsn)
            conn.execute(ddl.encode())
            conn.commit()
            cmp = compare(before, fp(dsn))
            if cmp.outcome is not Outcome.MISMATCH or \
                    [s.name for s in cmp.schemas if s.outcome is Outcome.MISMATCH] != ["public"]:
                missed.append(name)
    assert missed == []
    assert compare(base, fp(dsn)).outcome is Outcome.MISMATCH


def test_a_drill_on_it_passes_with_its_contract(work_dir: Path) -> None:
    (work_dir / "spectral.toml").write_text(CONFIG)
    (work_dir / "world.sql").write_text(WORLD)
    try:
        res = spectral("local", "psql", "--", "-v", "ON_ERROR_STOP=1", "-q", "-f", "world.sql",
                       cwd=work_dir)
        assert res.returncode == 0, res.stderr
        assert spectral("dr", "backup", cwd=work_dir).returncode == 0
        res = spectral("dr", "drill", "functional", "--content", "--json", cwd=work_dir)
        result = json.loads(res.stdout)
        assert res.returncode == 0, result
        checks = {c["name"].split(" (")[0]: c for c in result["checks"]}
        assert checks["contract"]["outcome"] == "pass"
        counted = checks["row counts of load-bearing tables"]["evidence"]
        assert "public.events: 400 rows, match" in counted          # over its partitions
        assert result["rpo_method"] and result["rpo_seconds"] is not None
    finally:
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []
