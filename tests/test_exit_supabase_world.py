"""Issue 29 on the Supabase-shaped world (tests/supabase_world.py): the exit is proven with
`schemas = ["public"]` (auth.users and auth.uid() as shims) and with `["public", "auth",
"storage"]` (auth and storage move as data), into PostgreSQL 15 and 18 as a role with LOGIN
CREATEROLE owning an empty database; every user sees on the target exactly the rows they see
on the source, through the same policies and claims as PostgREST sets them. `public` referring
to storage.objects while storage is not moved is refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ClusterFactory, exit_target, spectral
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect
from supabase_world import World, build, rows_as

CONFIGS = {"public": ["public"], "all": ["public", "auth", "storage"]}


def world_source(make_cluster: ClusterFactory, work: Path, schemas: list[str], *,
                 storage_fk: bool = False) -> tuple[Cluster, World]:
    source = make_cluster()
    world = build(source.conninfo(), major=18, storage_fk=storage_fk)
    (work / "spectral.toml").write_text(
        f'[environments.app]\nprovider = "local"\ndsn = "{source.conninfo()}"\n'
        f'schemas = {json.dumps(schemas)}\n')
    return source, world



@pytest.mark.slow
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("version", ["18", "15"])
def test_the_supabase_world_exits_proven_and_every_user_sees_the_same_rows(
        work_dir: Path, make_cluster: ClusterFactory, pg15: PgBinaries, version: str,
        config: str) -> None:
    source, world = world_source(make_cluster, work_dir, CONFIGS[config])
    tgt, dsn = exit_target(make_cluster, pg15 if version == "15" else None)
    res = spectral("dr", "exit", "--to", dsn, "--yes", "--json", cwd=work_dir)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-3000:]
    assert json.loads(res.stdout)["outcome"] == "proven"
    report = json.loads(res.stdout)["report"]["items"]
    planned = {i["name"]: i for i in report if i["kind"] == "role membership"}
    assert {f"authenticator in {r}" for r in ("anon", "authenticated", "service_role")} \
        <= set(planned), sorted(planned)
    assert "PASSWORD" in planned["authenticator in anon"]["consequence"]
    service = next(i for i in report if i["kind"] == "role" and i["name"] == "service_role")
    assert "ALTER ROLE service_role BYPASSRLS" in service["consequence"]
    with tgt.connect() as conn:    # the one step the report leaves to the new host: a password
        conn.execute("alter role authenticator login password 'postgrest-pw'")
    api = dsn.replace("user=app", "user=authenticator") + " password=postgrest-pw"
    moved = [t for t in world.rls_tables if t.split(".")[0] in CONFIGS[config]]
    assert moved
    for uid in (*world.user_ids, None):   # as PostgREST: log in as authenticator, SET ROLE
        for table in moved:
            assert rows_as(api, uid, table) == rows_as(source.conninfo(), uid, table), \
                (uid, table)


def test_public_referring_to_storage_objects_is_refused_unless_storage_moves(
        work_dir: Path, make_cluster: ClusterFactory) -> None:
    _source, _world = world_source(make_cluster, work_dir, ["public"], storage_fk=True)
    _tgt, dsn = exit_target(make_cluster, None)
    res = spectral("dr", "exit", "--to", dsn, "--yes", cwd=work_dir)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "storage.objects" in res.stderr and "nothing was written" in res.stderr, res.stderr
    with connect(dsn) as conn:
        assert conn.execute("select count(*) from pg_class where relnamespace = "
                            "'public'::regnamespace").fetchone() == (0,)
