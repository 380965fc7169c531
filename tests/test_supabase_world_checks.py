"""Issue 29, on PostgreSQL and on the Supabase-shaped world (tests/supabase_world.py): event
triggers are in the fingerprint (name, event, tags, function, enabled state) and compare names
each change of one in a line; a backup and a `--content` drill pass on a local environment
whose database is the world, and `dr compare` names each realistic change made to it."""

from __future__ import annotations

from typing import Any

from conftest import ClusterFactory
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
    triggers = Fingerprint.from_json(base).database
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
    assert through["database"] == take(dsn, opts)["database"]


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
    old = {k: v for k, v in base.items() if k not in ("database", "seal")}
    old["catalog_version"] = 2
    _do(dsn, "alter event trigger audit_ddl disable")
    now = take(dsn, opts)
    assert compare(old, now).outcome is Outcome.MATCH
    assert compare(now, old).outcome is Outcome.MATCH
    assert Fingerprint.from_json(old).to_json() == {**old, "seal": ""}
    assert compare(base, now).database.differences == ["event trigger audit_ddl: disabled"]
    # the document reads back whole, its section included
    assert Fingerprint.from_json(now).to_json() == now
