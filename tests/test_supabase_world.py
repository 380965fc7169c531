"""The Supabase-shaped test world (tests/supabase_world.py) builds on PostgreSQL 18 and 15 and
behaves as a Supabase project does: each user sees exactly their own rows through the
policies when the JWT claims are set as PostgREST sets them, anon sees none, a new auth user
gets a profile from the trigger, and the catalog holds what makes the exit hard (owner roles
that are also grantees, partial privilege lists with MAINTAIN, default privileges of
postgres and supabase_admin, the PostgREST event triggers).

Facts only, from: github.com/supabase/postgres @ 7db7e1a9e34b9ffb9b0e3372ccf08eb4fa772f4b
(The PostgreSQL License; migrations/db/init-scripts/, migrations/db/migrations/, ansible/files/
pgbouncer_config/), github.com/supabase/auth @ bc32168e13fdc928c98b449fc76bc3fdb9a293c5 (MIT;
migrations/), github.com/supabase/storage @ 4fa61fba9371c4bd40cbb81509f07bcb3af21683
(Apache-2.0; migrations/tenant/), github.com/supabase/supabase examples/user-management and
examples/todo-list migrations (Apache-2.0); see tests/supabase_world/*.sql."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import ClusterFactory
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect
from spectral.runner import run
from supabase_world import World, build, rows_as


def query(dsn: str, text: str, *args: Any) -> list[tuple[Any, ...]]:
    with connect(dsn) as conn:
        conn.execute("set search_path = pg_catalog")     # regclass::text always qualified
        return conn.execute(text, args or None).fetchall()


def api_login(c: Cluster) -> str:
    """A role like PostgREST's authenticator: LOGIN, no superuser, member of the API roles."""
    with c.connect() as conn:
        conn.execute("create role api_tester login noinherit")
        conn.execute("grant anon, authenticated to api_tester")
    return c.conninfo().replace("user=postgres", "user=api_tester")


def check_rls_per_user(dsn: str, api: str, world: World) -> None:
    for uid, email in zip(world.user_ids, world.emails, strict=True):
        for table in world.rls_tables:
            column = world.user_id_columns[table]
            own = query(dsn, f"select count(*) from {table} where {column} = %s::uuid", uid)
            assert own[0][0] > 0, (table, email)
            seen = rows_as(api, uid, table, email=email)
            assert [r for r in seen if str(r[_col(dsn, table, column)]) != uid] == []
            assert len(seen) == own[0][0], (table, email)
    for table in world.rls_tables:      # anon holds ALL on storage.objects: policies hide
        assert rows_as(api, None, table) == [], table


def _col(dsn: str, table: str, column: str) -> int:
    rows = query(dsn, "select attnum from pg_attribute where attrelid = %s::regclass and "
                      "attname = %s", table, column)
    return int(rows[0][0]) - 1


def check_catalog(dsn: str, world: World) -> None:
    roles = dict(((r[0]), r[1:]) for r in query(
        dsn, "select rolname::text, rolsuper, rolcanlogin, rolinherit, rolbypassrls, "
             "rolcreaterole from pg_roles"))
    assert roles["supabase_admin"][0] is True
    assert roles["anon"][1] is False and roles["authenticated"][1] is False
    assert roles["service_role"][1:4] == (False, True, True)
    assert roles["authenticator"][1:3] == (True, False)
    assert roles["supabase_auth_admin"][4] and roles["supabase_storage_admin"][4]
    assert {"dashboard_user", "pgbouncer", "supabase_replication_admin",
            "supabase_read_only_user"} <= set(roles)
    members = {r[0] for r in query(dsn, "select pg_get_userbyid(roleid)::text from "
                                        "pg_auth_members where member = 'authenticator'"
                                        "::regrole")}
    assert members == {"anon", "authenticated", "service_role"}
    owners = dict(query(dsn, "select nspname::text, pg_get_userbyid(nspowner)::text from "
                             "pg_namespace where nspname in ('auth', 'storage', 'extensions')"))
    assert owners == {"auth": "supabase_admin", "storage": "supabase_admin",
                      "extensions": "supabase_admin"}
    tables = dict(query(dsn, "select oid::regclass::text, pg_get_userbyid(relowner)::text "
                             "from pg_class where oid in ('auth.users'::regclass, "
                             "'storage.objects'::regclass)"))
    assert tables == {"auth.users": "supabase_auth_admin",
                      "storage.objects": "supabase_storage_admin"}
    # the owner roles are grantees of their schemas too
    assert query(dsn, "select has_schema_privilege('supabase_auth_admin', 'auth', 'CREATE'), "
                      "'supabase_auth_admin=UC/supabase_admin' = any(nspacl::text[]) "
                      "from pg_namespace where nspname = 'auth'") == [(True, True)]
    rls = {r[0] for r in query(dsn, "select oid::regclass::text from pg_class where "
                                    "relrowsecurity and relkind = 'r'")}
    assert {"auth.users", "auth.identities", "storage.objects", "storage.buckets",
            "public.todos", "public.profiles", "public.documents"} <= rls
    defaults = query(dsn, "select pg_get_userbyid(defaclrole)::text, defaclobjtype, "
                          "defaclacl::text from pg_default_acl where defaclnamespace = "
                          "'public'::regnamespace order by 1, 2")
    for owner in ("postgres", "supabase_admin"):
        kinds = {d[1] for d in defaults if d[0] == owner}
        assert kinds == {"r", "S", "f"}, (owner, defaults)
        assert all("authenticated=" in d[2] for d in defaults if d[0] == owner)
    triggers = query(dsn, "select evtname::text, evtevent::text, evtfoid::regproc::text, "
                          "evtenabled::text, evttags::text from pg_event_trigger order by 1")
    assert triggers == [
        ("issue_pg_cron_access", "ddl_command_end", "extensions.grant_pg_cron_access", "O",
         "{\"CREATE SCHEMA\"}"),
        ("pgrst_ddl_watch", "ddl_command_end", "extensions.pgrst_ddl_watch", "O", None),
        ("pgrst_drop_watch", "sql_drop", "extensions.pgrst_drop_watch", "O", None)]
    fk = query(dsn, "select count(*) from pg_constraint where conrelid = 'public.documents'"
                    "::regclass and confrelid = 'storage.objects'::regclass")
    assert fk == [(1 if world.storage_fk else 0,)]


def check_functions(api: str, world: World) -> None:
    uid, email = world.user_ids[2], world.emails[2]
    with connect(api, autocommit=False) as conn, conn.transaction():
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)",
                     (f'{{"sub": "{uid}", "role": "authenticated", "email": "{email}"}}',))
        got = conn.execute("select auth.uid()::text, auth.role(), auth.email(), "
                           "auth.jwt() ->> 'sub', storage.foldername('a/b/c.pdf'), "
                           "storage.filename('a/b/c.pdf'), storage.extension('a/b/c.tar.gz')"
                           ).fetchone()
    assert got == (uid, "authenticated", email, uid, ["a", "b"], "c.pdf", "gz")
    assert email == "user3@example.test"


def check_signup(dsn: str) -> None:
    with connect(dsn) as conn:
        conn.execute("insert into auth.users (id, aud, role, email, raw_user_meta_data, "
                     "created_at, updated_at) values ('00000000-0000-4000-8000-0000000000aa', "
                     "'authenticated', 'authenticated', 'new@example.test', "
                     "'{\"full_name\": \"New Person\"}', now(), now())")
        got = conn.execute("select full_name from public.profiles where id = "
                           "'00000000-0000-4000-8000-0000000000aa'").fetchall()
    assert got == [("New Person",)]


def check_world(c: Cluster, world: World) -> None:
    dsn = c.conninfo()
    assert len(world.user_ids) == 5 and world.emails[0] == "user1@example.test"
    profiles = query(dsn, "select id::text, full_name from public.profiles order by 2")
    assert [p[0] for p in profiles] == list(world.user_ids)     # filled by the trigger
    api = api_login(c)
    check_catalog(dsn, world)
    check_functions(api, world)
    check_rls_per_user(dsn, api, world)
    check_signup(dsn)


def test_the_world_builds_and_behaves_on_18(make_cluster: ClusterFactory, bins: PgBinaries
                                            ) -> None:
    c = make_cluster()
    world = build(c.conninfo(), major=18)
    check_world(c, world)
    dsn = c.conninfo()
    # partial privilege lists holding MAINTAIN, for grantees not holding every privilege
    # plainly: pg_dump writes them as lists (GRANT INSERT,...,MAINTAIN,... TO ...)
    partial = query(dsn, r"""
        select c.oid::regclass::text, a.grantee::regrole::text,
               string_agg(a.privilege_type, ',' order by a.privilege_type)
        from pg_class c, aclexplode(c.relacl) a
        where c.relkind = 'r' and not a.is_grantable
        group by 1, 2
        having bool_or(a.privilege_type = 'MAINTAIN') and count(*) < 8""")
    grantees = {(t, g) for t, g, _ in partial}
    assert ("auth.users", "postgres") in grantees        # ALL, SELECT grantable (auth's 2024)
    assert {("public.todos", "anon"), ("public.todos", "authenticated")} <= grantees
    acl = query(dsn, "select relacl::text from pg_class where oid = 'public.todos'::regclass")
    assert "anon=arwdm/postgres" in acl[0][0]
    dump = run([bins.path("pg_dump"), "--schema-only", "--schema=auth", "--table=auth.users",
                dsn], timeout=120).stdout
    assert "GRANT INSERT,REFERENCES,DELETE,TRIGGER,TRUNCATE,MAINTAIN,UPDATE ON TABLE " \
           "auth.users TO postgres;" in dump


def test_the_world_builds_and_behaves_on_15_with_the_storage_foreign_key(
        make_cluster: ClusterFactory, pg15: PgBinaries) -> None:
    c = make_cluster(pg15)
    world = build(c.conninfo(), major=15, storage_fk=True)
    check_world(c, world)
    exts = {r[0] for r in query(c.conninfo(), "select extname::text from pg_extension e "
                                "where extnamespace = 'extensions'::regnamespace")}
    assert exts == {"uuid-ossp", "pgcrypto"}            # Debian's 15 ships them
    with pytest.raises(PermissionError, match="SET ROLE authenticated"):
        rows_as(c.conninfo().replace("user=postgres", "user=pgbouncer"), world.user_ids[0],
                "public.todos")
