"""Issue 29, on PostgreSQL and on the Supabase-shaped world (tests/supabase_world.py): event
triggers are in the fingerprint (name, event, tags, function, enabled state) and compare names
each change of one in a line; a backup and a `--content` drill pass on a local environment
whose database is the world, and `dr compare` names each realistic change made to it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ClusterFactory, spectral
from read_only_endpoint import ensure_role
from spectral.pg.conn import connect
from spectral.verify.compare import Outcome, compare
from spectral.verify.document import Fingerprint
from spectral.verify.fingerprint import Options, take
from test_verify_by_query import reader


def _do(dsn: str, *statements: str) -> None:
    with connect(dsn) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def _lines(cmp: Any) -> list[str]:
    out = list(cmp.database.differences)
    for s in [*cmp.schemas, *cmp.drift]:
        out += s.differences
    return out


APP_TRIGGER = ("create schema app", "create table app.t (id int)",
               "create function app.audit_ddl() returns event_trigger language plpgsql "
               "as $$ begin null; end $$",
               "create function app.audit_drop() returns event_trigger language plpgsql "
               "as $$ begin null; end $$",
               "create event trigger audit_ddl on ddl_command_end "
               "when tag in ('CREATE TABLE', 'ALTER TABLE') execute function app.audit_ddl()")


def test_each_change_of_an_event_trigger_is_named_in_one_line(
        make_cluster: ClusterFactory) -> None:
    dsn = make_cluster().conninfo()
    _do(dsn, *APP_TRIGGER)
    opts = Options(("app",))
    base = take(dsn, opts)
    triggers = base.database
    assert triggers is not None and triggers.objects == {"event_trigger audit_ddl": {
        "name": "audit_ddl", "event": "ddl_command_end", "tags": ["ALTER TABLE", "CREATE TABLE"],
        "function": "app.audit_ddl()", "enabled": "O"}}
    assert compare(base, take(dsn, opts)).outcome is Outcome.MATCH
    changes = [
        ("alter event trigger audit_ddl disable", "event trigger audit_ddl: disabled"),
        ("alter event trigger audit_ddl enable always",
         "event trigger audit_ddl: disabled -> always"),
        ("drop event trigger audit_ddl; create event trigger audit_ddl on ddl_command_end "
         "when tag in ('CREATE TABLE') execute function app.audit_ddl()",
         "event trigger audit_ddl: tags ALTER TABLE, CREATE TABLE -> CREATE TABLE"),
        ("drop event trigger audit_ddl; create event trigger audit_ddl on ddl_command_end "
         "execute function app.audit_ddl()",
         "event trigger audit_ddl: tags CREATE TABLE -> any command"),
        ("drop event trigger audit_ddl; create event trigger audit_ddl on sql_drop "
         "execute function app.audit_drop()",
         "event trigger audit_ddl: event ddl_command_end -> sql_drop"),
        ("alter event trigger audit_ddl rename to audit_drop",
         "event trigger audit_ddl: renamed to audit_drop"),
        ("drop event trigger audit_drop", "event trigger audit_drop: dropped"),
        ("create event trigger watch on ddl_command_end execute function app.audit_ddl()",
         "event trigger watch: added"),
    ]
    before = take(dsn, opts)
    for statement, line in changes:
        _do(dsn, statement)
        after = take(dsn, opts)
        cmp = compare(before, after)
        assert cmp.outcome is Outcome.MISMATCH, statement
        assert line in cmp.database.differences, (statement, _lines(cmp))
        assert [s.outcome for s in cmp.schemas] == [Outcome.MATCH], statement
        before = after
    _do(dsn, "drop event trigger watch; create event trigger watch on ddl_command_end "
             "execute function app.audit_drop()")
    cmp = compare(before, take(dsn, opts))
    assert cmp.database.differences == [
        "event trigger watch: function app.audit_ddl() -> app.audit_drop()"]
    # read through a read-only query endpoint (a Supabase copy), the same section
    ensure_role(dsn)
    through = reader(dsn).fingerprint(opts)
    assert through.database == take(dsn, opts).database


def test_an_event_trigger_of_a_managed_schema_is_drift_and_older_fingerprints_compare(
        make_cluster: ClusterFactory) -> None:
    """The platform's event triggers (their function in a managed schema: Supabase's
    pgrst_ddl_watch runs extensions.pgrst_ddl_watch()) change as the platform changes them:
    drift, a failure only with --include-managed, named under the function's schema."""
    dsn = make_cluster().conninfo()
    _do(dsn, *APP_TRIGGER, "create schema extensions",
        "create function extensions.pgrst_ddl_watch() returns event_trigger "
        "language plpgsql as $$ begin null; end $$",
        "create event trigger pgrst_ddl_watch on ddl_command_end "
        "execute function extensions.pgrst_ddl_watch()")
    opts = Options(("app",))
    base = take(dsn, opts)
    _do(dsn, "alter event trigger pgrst_ddl_watch disable")
    after = take(dsn, opts)
    cmp = compare(base, after)
    assert cmp.outcome is Outcome.MATCH and cmp.database.outcome is Outcome.MATCH
    drift = {s.name: s for s in cmp.drift}
    assert drift["extensions"].outcome is Outcome.MISMATCH
    assert drift["extensions"].differences[0] == "event trigger pgrst_ddl_watch: disabled"
    assert compare(base, after, include_managed=True).outcome is Outcome.MISMATCH
    # a fingerprint taken before event triggers were described: compared on what both saw
    old = {k: v for k, v in base.to_json().items() if k not in ("database", "seal")}
    old["catalog_version"] = 2
    _do(dsn, "alter event trigger audit_ddl disable")
    now = take(dsn, opts)
    older = Fingerprint.from_json(old)
    assert compare(older, now).outcome is Outcome.MATCH
    assert compare(now, older).outcome is Outcome.MATCH
    assert older.to_json() == {**old, "seal": ""}
    assert compare(base, now).database.differences == ["event trigger audit_ddl: disabled"]
    # the document reads back whole, its section included
    assert Fingerprint.from_json(now.to_json()) == now


TOML = """[environments.staging]
provider = "local"
posture = "pitr"
schemas = ["public"]
load_bearing_tables = ["public.profiles", "public.todos", "public.documents"]

[environments.staging.contract]
tables = [{ name = "auth.users", columns = ["id", "email"] },
          { name = "public.todos", rls = true }]
referenced_by = ["public"]
"""


@contextlib.contextmanager
def world_environment(work: Path) -> Iterator[str]:
    """A local environment "staging" whose database is the Supabase-shaped world (protecting
    `public`; auth, storage and extensions are the platform's), running, with one backup."""
    from spectral.config.load import load_config
    from spectral.environment import open_environment
    from spectral.providers.local.provider import LocalProvider
    from supabase_world import build

    (work / "spectral.toml").write_text(TOML)
    provider = open_environment(load_config(None, cwd=work), "staging").provider
    assert isinstance(provider, LocalProvider)
    provider.local.up()
    try:
        dsn = provider.local.cluster().conninfo()
        build(dsn, major=18)
        yield dsn
    finally:
        for inst in provider.instances():
            provider.teardown(inst.id)
        provider.local.down()


# (what a team does, the SQL, the section of the comparison that names it, what the line says)
CHANGES: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("policy dropped", 'drop policy "Individuals can delete their own todos." on public.todos',
     "public", ("public.todos.Individuals can delete their own todos. (policy)", "dropped")),
    ("policy USING changed", 'alter policy "Individuals can view their own todos." on '
     "public.todos using (true)",
     "public", ("Individuals can view their own todos. (policy)", "USING changed")),
    ("RLS disabled", "alter table public.profiles disable row level security",
     "public", ("public.profiles", "row level security on -> off")),
    ("GRANT revoked from anon", "revoke select on public.profiles from anon",
     "public", ("public.profiles", "revoked anon:SELECT")),
    ("column added", "alter table public.todos add column due date",
     "public", ("public.todos.due", "column added (date)")),
    ("auth.uid() body changed", "create or replace function auth.uid() returns uuid "
     "language sql stable as $$ select nullif(current_setting('request.jwt.claim.sub', "
     "true), '')::uuid $$",
     "auth", ("auth.uid() (function)", "body changed")),
    ("on_auth_user_created dropped", "drop trigger on_auth_user_created on auth.users",
     "auth", ("auth.users.on_auth_user_created (trigger)", "dropped")),
    ("index dropped", "drop index auth.users_instance_id_idx",
     "auth", ("auth.users_instance_id_idx (index)", "dropped")),
    ("default privilege revoked", "alter default privileges for role postgres in schema "
     "public revoke all on tables from anon",
     "public", ("default privileges on tables created by postgres", "anon")),
    ("event trigger disabled", "alter event trigger pgrst_ddl_watch disable",
     "extensions", ("event trigger pgrst_ddl_watch: disabled",)),
    ("event trigger dropped", "drop event trigger pgrst_drop_watch",
     "extensions", ("event trigger pgrst_drop_watch: dropped",)),
    ("user's event trigger added", "create function public.log_ddl() returns event_trigger "
     "language plpgsql as $$ begin null; end $$; create event trigger log_ddl on "
     "ddl_command_end execute function public.log_ddl()",
     "database", ("event trigger log_ddl: added",)),
]


def _compare(work: Path, base: Path) -> tuple[int, dict[str, list[str]]]:
    """`dr compare base staging`: its exit code and its lines by section (a protected schema,
    a managed schema's drift, or the database's event triggers)."""
    res = spectral("--env", "staging", "dr", "compare", str(base), "staging", "--json",
                   cwd=work)
    assert res.returncode in (0, 1), res.stdout + res.stderr
    out = json.loads(res.stdout)
    lines = {s["schema"]: s["differences"] for s in [*out["schemas"], *out["drift"]]}
    lines["database"] = out["database"]["differences"]
    return res.returncode, lines


@pytest.mark.server
def test_the_world_backs_up_drills_and_each_realistic_change_is_named(work_dir: Path) -> None:
    with world_environment(work_dir) as dsn:
        res = spectral("--env", "staging", "dr", "backup", cwd=work_dir)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        res = spectral("--env", "staging", "dr", "drill", "functional", "--content", "--yes",
                       "--json", cwd=work_dir)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        drill = json.loads(res.stdout)
        assert drill["outcome"] == "pass", drill
        first = "row-count drift since the last passing drill"   # nothing to compare with
        assert {c["outcome"] for c in drill["checks"] if c["name"] != first} == {"pass"}, \
            drill["checks"]
        names = [c["name"] for c in drill["checks"]]
        assert "content checksums of every table" in names, names
        assert "contract (auth.users, public.todos; referenced by public)" in names, names
        base = work_dir / "base.json"
        res = spectral("--env", "staging", "dr", "fingerprint", "--out", str(base), cwd=work_dir)
        assert res.returncode == 0, res.stderr
        assert _compare(work_dir, base) == (0, {"public": [], "database": [], **{
            s: [] for s in json.loads(base.read_text())["managed"]}})
        seen: dict[str, list[str]] = {}
        for what, statement, section, words in CHANGES:
            _do(dsn, statement)
            code, lines = _compare(work_dir, base)
            new = [x for x in lines.get(section, []) if x not in seen.get(section, [])]
            assert any(all(w in x for w in words) for x in new), (what, new, lines)
            # a protected schema's change, or a user's event trigger, fails the compare
            assert code == 1 or section not in ("public", "database"), what
            seen = lines
        # not in the fingerprint: roles, their attributes and memberships
        _do(dsn, "revoke authenticated from authenticator")
        assert _compare(work_dir, base)[1] == seen
        text = spectral("--env", "staging", "dr", "compare", str(base), "staging",
                        cwd=work_dir).stdout
        assert "  event triggers: mismatch\n    - event trigger log_ddl: added" in text, text
        assert "    - event trigger pgrst_ddl_watch: disabled" in text.split(
            "drift in extensions", 1)[1], text
