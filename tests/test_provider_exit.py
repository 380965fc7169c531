"""The provider exit on real clusters: the reference database on PostgreSQL 18, with its
Supabase-like auth schema, roles and a policy calling auth.uid(), moved by the provider-failure
playbook into Debian's PostgreSQL 15 as a role that is not a superuser; proven, recorded,
re-invites written; a policy works through the shim. A non-empty target and a dependency
without a plan are refused before anything is written; a Supabase environment exits from a
restored project."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from conftest import ClusterFactory, _processes_under, spectral
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect, with_dbname
from test_playbooks import setup

SECRET = "exit-pw-Zq81x"          # in the target DSN: must never be shown or written
# the reference database's invitation table, as its configuration names it
INVITES = ('{ table = "core.domain_invites", values = { '
           'org_id = "(select u.org_id from core.users u where u.id = invitee.id::uuid)", '
           'role = "(select u.role from core.users u where u.id = invitee.id::uuid)", '
           'expires_at = "now() + interval \'14 days\'" } }')


def target_cluster(make_cluster: ClusterFactory, pg15: PgBinaries) -> tuple[Cluster, str]:
    """PostgreSQL 15 with a database owned by `app`: LOGIN CREATEROLE, not a superuser."""
    c = make_cluster(pg15)
    with c.connect() as conn:
        conn.execute("create role app login createrole nosuperuser nobypassrls")
        conn.execute("create database app owner app")
    parts = c.conninfo().replace("user=postgres", "user=app").replace("dbname=postgres",
                                                                      "dbname=app")
    return c, f"{parts} password={SECRET}"


def schemas_on(dsn: str) -> set[str]:
    with connect(dsn) as conn:
        return {r[0] for r in conn.execute("select nspname from pg_namespace where nspname "
                                           "not like 'pg\\_%' and nspname <> "
                                           "'information_schema'")}


def no_secret_anywhere(work_dir: Path, *outputs: str) -> None:
    for text in outputs:
        assert SECRET not in text
    for path in work_dir.rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000 and "pgdata" not in str(path):
            assert SECRET.encode() not in path.read_bytes(), path


def test_provider_failure_moves_into_pg15_and_proves_it(work_dir: Path,
                                                        make_cluster: ClusterFactory,
                                                        pg15: PgBinaries) -> None:
    dsn = setup(work_dir)            # the reference database, seeded and backed up (pitr)
    target, target_dsn = target_cluster(make_cluster, pg15)
    env = {**os.environ, "EXIT_DSN": target_dsn}
    toml = work_dir / "spectral.toml"
    toml.write_text(toml.read_text().replace('posture = "pitr"\n', 'posture = "pitr"\n'
                                             'exit_target = "env:EXIT_DSN"\n'
                                             f'exit_invites = {INVITES}\n', 1))
    try:
        with connect(dsn) as conn:
            users = conn.execute("select id::text, email::text from core.users "
                                 "order by 1").fetchall()
            returns = conn.execute("select count(*) from worlds.returns").fetchone()
        # spectral's own rules hook (triggers on platform tables): moved along with them
        assert spectral("db", "rules-hook", "install", cwd=work_dir).returncode == 0
        report = spectral("dr", "portability", "--json", cwd=work_dir, env=env)
        assert report.returncode == 0, report.stdout + report.stderr
        items = {(i["kind"], i["name"]): i for i in json.loads(report.stdout)["items"]}
        assert items[("table in auth", "auth.users")]["plan"] == "shim"
        assert items[("function in auth", "auth.uid()")]["plan"] == "shim"
        assert "policy users_self_read on core.users" in \
            items[("function in auth", "auth.uid()")]["used_by"]
        for role in ("authenticated", "service_role", "spectral_reviewer"):
            assert items[("role", role)]["plan"] == "shim"       # app may create roles
        assert "BYPASSRLS" in (items[("role", "service_role")]["consequence"] or "")
        assert items[("extension", "btree_gist")]["plan"] in ("shim", "available")
        assert items[("privilege", "MAINTAIN")]["plan"] == "leave out"   # 18 -> 15
        assert items[("owner", "postgres")]["plan"] == "map"
        assert items[("schema spectral_hooks", "spectral_hooks")]["plan"] == "available"

        res = spectral("dr", "playbook", "run", "provider-failure", "--yes", "--json",
                       cwd=work_dir, env=env, timeout=900)
        assert res.returncode == 0, res.stdout + res.stderr
        run = json.loads(res.stdout)
        assert run["steps"][0]["outcome"] == "done"
        assert "proven" in run["steps"][0]["detail"]

        exits = json.loads(spectral("dr", "log", "--kind", "exit", "--json",
                                    cwd=work_dir).stdout)
        entry = exits[0]["data"]
        assert entry["outcome"] == "proven" and entry["comparison"]["outcome"] == "match"
        assert {"dump", "restore", "verify"} <= set(entry["timings"])
        assert any("owner postgres -> app" in p for p in entry["planned"])
        with connect(target_dsn) as conn:
            assert conn.execute("select current_setting('server_version_num')::int / 10000"
                                ).fetchone() == (15,)
            assert conn.execute("select rolsuper from pg_roles where rolname = current_user"
                                ).fetchone() == (False,)
        with connect(with_dbname(target.conninfo(), "app")) as conn:   # as its superuser:
            # worlds.returns has FORCE ROW LEVEL SECURITY, so its owner sees what policies allow
            assert conn.execute("select count(*) from worlds.returns").fetchone() == returns
            moved = conn.execute("select id::text, email::text from core.users "
                                 "order by 1").fetchall()
            assert moved == users                       # nothing that points at them is lost
            assert conn.execute("select count(*) from pg_trigger where tgname like "
                                "'spectral%'").fetchone() != (0,)     # the hook came along
            cols = conn.execute("select array_agg(attname::text) from pg_attribute where "
                                "attrelid = 'auth.users'::regclass and attnum > 0").fetchone()
            assert cols == (["id"],)                    # ids only: identities stayed behind
        with connect(with_dbname(target.conninfo(), "app")) as conn, conn.transaction():
            conn.execute("set local role authenticated")   # as PostgREST would, with the JWT
            conn.execute("select set_config('request.jwt.claims', %s, true)",
                         (json.dumps({"sub": users[0][0], "role": "authenticated"}),))
            seen = conn.execute("select id::text from core.users").fetchall()
            assert seen == [(users[0][0],)]             # the policy, through auth.uid()'s shim
        files = run["reinvite_files"]           # one list, and the invitations' SQL
        assert files == entry["reinvites"] and len(files) == 2, files
        with open(next(f for f in files if f.endswith(".csv")), newline="") as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == ["id", "email", "core.users"]       # nothing else
        assert sorted((r["id"], r["email"], r["core.users"]) for r in rows) == [
            (i, e, "1") for i, e in users]
        sql_text = Path(next(f for f in files if f.endswith(".sql"))).read_text()
        assert sql_text.count('insert into "core"."domain_invites"') == len(users)
        runbook = spectral("dr", "runbook", "render", cwd=work_dir, env=env)
        assert "provider exit" in runbook.stdout and "proven" in runbook.stdout
        no_secret_anywhere(work_dir, res.stdout, res.stderr, report.stdout, runbook.stdout)
    finally:
        spectral("dr", "teardown", "--all", cwd=work_dir)
        spectral("local", "down", cwd=work_dir)
        target.stop(timeout=20)
    assert _processes_under(work_dir) == []


def test_a_non_empty_target_is_refused_before_anything_is_written(
        local_reference: tuple[Path, str], make_cluster: ClusterFactory,
        pg15: PgBinaries) -> None:
    work, _source = local_reference
    _target, target_dsn = target_cluster(make_cluster, pg15)
    with connect(target_dsn) as conn:
        conn.execute("create schema worlds")
        conn.execute("create table worlds.mine (id int)")
    before = schemas_on(target_dsn)
    res = spectral("dr", "exit", "--to", target_dsn, "--yes", cwd=work)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "not empty: worlds (" in res.stderr and "nothing was written" in res.stderr
    assert schemas_on(target_dsn) == before
    log = json.loads(spectral("dr", "log", "--kind", "exit", "--json", cwd=work).stdout)
    assert log[0]["data"]["outcome"] == "refused"
    no_secret_anywhere(work, res.stdout, res.stderr)


def test_a_dependency_without_a_plan_is_refused_before_anything_is_written(
        local_reference: tuple[Path, str], make_cluster: ClusterFactory,
        pg15: PgBinaries) -> None:
    work, source = local_reference
    with connect(source) as conn:      # a provider-managed table with no shim
        conn.execute("create schema storage")
        conn.execute("create table storage.objects (id uuid primary key)")
        conn.execute("alter table core.orgs add column logo uuid references storage.objects")
    _target, target_dsn = target_cluster(make_cluster, pg15)
    before = schemas_on(target_dsn)
    report = spectral("dr", "portability", "--target", target_dsn, "--json", cwd=work)
    assert report.returncode == 1
    refused = [i for i in json.loads(report.stdout)["items"] if i["plan"] == "refuse"]
    assert [i["name"] for i in refused] == ["storage.objects"]
    assert "constraint orgs_logo_fkey on core.orgs" in refused[0]["used_by"][0]
    res = spectral("dr", "exit", "--to", target_dsn, "--yes", cwd=work)
    assert res.returncode == 2 and "storage.objects" in res.stderr, res.stderr
    assert schemas_on(target_dsn) == before


def test_a_supabase_environment_exits_from_a_restored_project(
        project: tuple[Path, object, str, object], make_cluster: ClusterFactory,
        pg15: PgBinaries) -> None:
    from supabase_emulator import EMU_REF, Emulator

    work, emu, dsn, _server = project
    assert isinstance(emu, Emulator)
    ref = emu.restore_to_new_project(EMU_REF, None)       # the operator's restore
    restored_dsn = dsn.replace(EMU_REF, ref)              # Supabase's DSN shape, by ref
    target, target_dsn = target_cluster(make_cluster, pg15)
    res = spectral("dr", "exit", "--to", target_dsn, "--source-dsn", restored_dsn, "--yes",
                   "--json", cwd=work, env={**os.environ, "SUPABASE_TEST_TOKEN": "unused"})
    assert res.returncode == 0, res.stdout + res.stderr
    result = json.loads(res.stdout)
    assert result["outcome"] == "proven" and ref in result["source"], result
    with connect(target_dsn) as conn:
        assert conn.execute("select count(*) from core.notes").fetchone() == (1,)
    # the provider-failure playbook of the same environment, from the live project
    with connect(with_dbname(target.conninfo(), "postgres")) as conn:
        conn.execute("create database second owner app")
    second = target_dsn.replace("dbname=app", "dbname=second")
    run = spectral("dr", "playbook", "run", "provider-failure", "--to", second, "--yes",
                   "--json", cwd=work, env={**os.environ, "SUPABASE_TEST_TOKEN": "unused"})
    assert run.returncode == 0, run.stdout + run.stderr
    steps = json.loads(run.stdout)["steps"]
    assert steps[0]["outcome"] == "done" and "proven" in steps[0]["detail"]
    no_secret_anywhere(work, res.stdout, res.stderr, run.stdout, run.stderr)


def test_a_failure_after_writing_undoes_what_the_exit_wrote(
        local_reference: tuple[Path, str], make_cluster: ClusterFactory,
        pg15: PgBinaries) -> None:
    """A target whose auth.users has no key the foreign key can use: the report cannot see it,
    post-data fails, and everything the exit made is dropped again (the target's own auth
    schema stays)."""
    work, _source = local_reference
    _target, target_dsn = target_cluster(make_cluster, pg15)
    with connect(target_dsn) as conn:
        conn.execute("create schema auth")
        conn.execute("create table auth.users (id uuid)")
    before = schemas_on(target_dsn)
    res = spectral("dr", "exit", "--to", target_dsn, "--yes", cwd=work)
    assert res.returncode != 0 and "auth.users" in res.stderr, res.stderr
    assert schemas_on(target_dsn) == before
    log = json.loads(spectral("dr", "log", "--kind", "exit", "--json", cwd=work).stdout)
    assert log[0]["data"]["outcome"] == "failed"
    no_secret_anywhere(work, res.stdout, res.stderr)


def test_exit_from_a_copy_of_the_latest_backup(work_dir: Path, make_cluster: ClusterFactory,
                                               pg15: PgBinaries) -> None:
    """--from-backup: the source is a copy restored now (the live database is not read), and
    the copy is removed afterwards."""
    from conftest import notes_environment

    _target, target_dsn = target_cluster(make_cluster, pg15)
    with notes_environment(work_dir) as environment:
        from spectral.pg.conn import connect as pg

        with pg(environment.provider.running_source() or "") as conn:
            conn.execute("insert into core.notes values (2, 'after the backup')")
        res = spectral("--env", "staging", "dr", "exit", "--to", target_dsn, "--from-backup",
                       "--yes", "--json", cwd=work_dir)
        assert res.returncode == 0, res.stdout + res.stderr
        assert json.loads(res.stdout)["source"].startswith("instance ")
        with connect(target_dsn) as conn:          # the latest point: both rows, from the WAL
            assert conn.execute("select count(*) from core.notes").fetchone() == (2,)
        assert environment.provider.instances() == []            # the copy is gone


def test_reinvite_files_stay_in_the_evidence_folder(make_cluster: ClusterFactory,
                                                    tmp_path: Path) -> None:
    """A table name is the user's: a quoted identifier with `/` and `..` in it must not take
    the re-invite list out of the evidence folder (it is a column of the one list)."""
    from spectral.exit.reinvite import read_reinvites, write_reinvites

    c = make_cluster()
    with c.connect() as conn:
        conn.execute("create schema auth; create table auth.users (id uuid primary key, "
                     "email text)")
        conn.execute('create table public."../../escape" (id uuid references auth.users)')
        conn.execute("insert into auth.users values (gen_random_uuid(), 'a@example.test')")
        conn.execute('insert into public."../../escape" select id from auth.users')
    folder = tmp_path / "evidence"
    folder.mkdir()
    with connect(c.conninfo(), autocommit=False) as conn:
        found = read_reinvites(conn, ["public"])
    written = write_reinvites(found, folder, None, print)
    assert len(written) == 1 and Path(written[0]).parent == folder, written
    assert list(tmp_path.iterdir()) == [folder]
    with open(written[0], newline="") as f:
        assert next(csv.reader(f)) == ["id", "email", 'public."../../escape"']
