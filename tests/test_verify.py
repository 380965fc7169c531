"""The verification engine on real clusters: sensitive to every kind of schema change (in the
right schema, named in the diff), stable across everything that must not matter."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from conftest import _make_cluster
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect, with_dbname
from spectral.refdb.author import author
from spectral.refdb.migrate import migrate
from spectral.refdb.seed import seed
from spectral.runner import run
from spectral.verify.compare import Outcome, compare, diff_table
from spectral.verify.content import Method, TablePlan, range_query, split
from spectral.verify.fingerprint import Options, take

PROTECTED = ("core", "worlds", "platform")
_ids = itertools.count()


@pytest.fixture(scope="module")
def vcluster(base_dir: Path, bins: PgBinaries) -> Iterator[Cluster]:
    """One cluster with two template databases: the migrated schema, and schema plus data."""
    started: list[Cluster] = []
    c = _make_cluster(base_dir, bins, f"verify{next(_ids)}", started)
    try:
        with c.connect() as conn:
            conn.execute("create database tmpl_schema")
            conn.execute("create database tmpl_data")
        with connect(with_dbname(c.conninfo(), "tmpl_schema")) as conn:
            migrate(conn)
        with connect(with_dbname(c.conninfo(), "tmpl_data")) as conn:
            migrate(conn)
        seed(with_dbname(c.conninfo(), "tmpl_data"), 1)
        with connect(with_dbname(c.conninfo(), "tmpl_data")) as conn:
            author(conn, rules_per_corpus=50)
        yield c
    finally:
        c.stop(timeout=20)


def fresh_db(c: Cluster, template: str = "tmpl_schema") -> str:
    name = f"db{next(_ids)}"
    with c.connect() as conn:
        conn.execute(f"create database {name} template {template}")
    return with_dbname(c.conninfo(), name)


def fp(dsn: str, content: bool = False, schemas: tuple[str, ...] = PROTECTED) -> dict:
    return take(dsn, Options(schemas, content=content))


ROLE = ("do $$ begin if not exists (select from pg_roles where rolname = 'spectral_test_owner') "
        "then create role spectral_test_owner; end if; end $$;")

# (id, schema expected to change, SQL, phrase expected among that schema's differences)
CHANGES = [
    ("column added", "worlds", "alter table worlds.forms add column note text",
     "worlds.forms.note: column added (text)"),
    ("column dropped", "worlds", "alter table worlds.forms drop column fields",
     "worlds.forms.fields: column dropped"),
    ("column renamed", "worlds", "alter table worlds.forms rename column sequence to seq",
     "worlds.forms.sequence: column renamed to 'seq'"),
    ("column retyped", "worlds",
     "alter table worlds.households alter column postcode type varchar(10)",
     "worlds.households.postcode: type text -> character varying(10)"),
    ("columns reordered", "platform",
     "drop table platform.rule_references; create table platform.rule_references ("
     "references_id bigint not null references platform.rules (id) on delete cascade, "
     "rule_id bigint not null references platform.rules (id) on delete cascade, "
     "primary key (rule_id, references_id), check (rule_id <> references_id))",
     "platform.rule_references: columns reordered (rule_id, references_id -> references_id, "
     "rule_id)"),
    ("default changed", "worlds",
     "alter table worlds.returns alter column status set default 'in_review'",
     "worlds.returns.status: default 'draft'::worlds.return_status -> "
     "'in_review'::worlds.return_status"),
    ("nullability changed", "worlds",
     "alter table worlds.households alter column postcode drop not null",
     "worlds.households.postcode: not null on -> off"),
    ("collation changed", "worlds",
     "alter table worlds.households alter column name type text collate \"POSIX\"",
     "worlds.households.name: collation none -> pg_catalog.\"POSIX\""),
    ("check constraint added", "worlds",
     "alter table worlds.forms add constraint forms_seq_positive check (sequence > 0)",
     "worlds.forms.forms_seq_positive (constraint): added"),
    ("constraint dropped", "worlds",
     "alter table worlds.returns drop constraint returns_filed_has_time",
     "worlds.returns.returns_filed_has_time (constraint): dropped"),
    ("constraint changed", "core",
     "alter table core.orgs drop constraint orgs_plan_check, add constraint orgs_plan_check "
     "check (plan in ('free', 'team'))", "core.orgs.orgs_plan_check (constraint): definition "
                                         "changed"),
    ("foreign key action changed", "worlds",
     "alter table worlds.forms drop constraint forms_return_id_fkey, add constraint "
     "forms_return_id_fkey foreign key (return_id) references worlds.returns (id)",
     "worlds.forms.forms_return_id_fkey (constraint): definition changed"),
    ("index added", "worlds", "create index forms_code_idx on worlds.forms (form_code)",
     "worlds.forms_code_idx (index): added"),
    ("index dropped", "worlds", "drop index worlds.line_items_form_idx",
     "worlds.line_items_form_idx (index): dropped"),
    ("partial index predicate changed", "worlds",
     "drop index worlds.returns_status_idx; create index returns_status_idx on worlds.returns "
     "(status) where status = 'draft'", "worlds.returns_status_idx (index): predicate changed"),
    ("index uniqueness changed", "core",
     "drop index core.users_email_lower_key; create index users_email_lower_key on core.users "
     "(lower(email::text))", "core.users_email_lower_key (index): is_unique on -> off"),
    ("view body changed", "core",
     "create or replace view core.active_users as select u.id, u.org_id, u.email, "
     "u.display_name, u.role from core.users u where u.is_active and u.org_id > 1",
     "core.active_users (view): definition changed"),
    ("materialized view body changed by one character", "worlds",
     "drop materialized view worlds.yearly_totals; create materialized view worlds.yearly_totals "
     "as select tax_year, status, count(*) as returns, sum(total_tax)::numeric(18, 3) as "
     "total_tax from worlds.returns group by tax_year, status with no data; "
     "create unique index yearly_totals_key on worlds.yearly_totals (tax_year, status); "
     "comment on materialized view worlds.yearly_totals is 'Refreshed after each seed.'",
     "worlds.yearly_totals (view): definition changed"),
    ("function body changed by one character", "worlds",
     "create or replace function worlds.effective_rate(income numeric, tax numeric) returns "
     "numeric language sql immutable strict parallel safe as $$ select case when income > 0 "
     "then round(tax / income, 5) else 0 end $$",
     "worlds.effective_rate(income numeric, tax numeric) (function): body changed"),
    ("function volatility flipped", "worlds",
     "alter function worlds.effective_rate(numeric, numeric) stable",
     "worlds.effective_rate(income numeric, tax numeric) (function): immutable -> stable"),
    ("security definer flipped", "platform",
     "alter function platform.record_rule_version() security invoker",
     "platform.record_rule_version() (function): security definer on -> off"),
    ("function settings changed", "platform",
     "alter function platform.record_rule_version() set search_path = 'pg_catalog'",
     "platform.record_rule_version() (function): settings changed"),
    ("trigger disabled", "worlds", "alter table worlds.returns disable trigger returns_touch",
     "worlds.returns.returns_touch (trigger): enabled -> disabled"),
    ("trigger added", "worlds",
     "create trigger forms_audit after insert on worlds.forms for each row execute function "
     "core.touch_updated_at()", "worlds.forms.forms_audit (trigger): added"),
    ("row level security disabled", "core", "alter table core.users disable row level security",
     "core.users: row level security on -> off"),
    ("forced row level security removed", "worlds",
     "alter table worlds.returns no force row level security",
     "worlds.returns: forced row level security on -> off"),
    ("policy USING changed", "platform", "alter policy rules_tenant on platform.rules using (true)",
     "platform.rules.rules_tenant (policy): USING changed"),
    ("policy added", "worlds",
     "create policy forms_read on worlds.forms for select to authenticated using (true)",
     "worlds.forms.forms_read (policy): added"),
    ("grant revoked", "worlds", "revoke select on worlds.forms from authenticated",
     "worlds.forms: privileges changed (revoked authenticated:SELECT:postgres)"),
    ("column grant added", "core", "grant select (email) on core.users to spectral_reviewer",
     "core.users.email: acl"),
    ("default privileges changed", "core",
     "alter default privileges in schema core grant select on tables to spectral_reviewer",
     "postgres.r (default_acl): added"),
    ("enum label added", "worlds", "alter type worlds.return_status add value 'amended'",
     "worlds.return_status (type): enum label(s) added 'amended'"),
    ("domain constraint dropped", "worlds", "alter domain worlds.money drop constraint money_range",
     "worlds.money (type): constraints changed"),
    ("sequence increment changed", "core", "alter sequence core.invite_code_seq increment by 3",
     "core.invite_code_seq (sequence): increment 7 -> 3"),
    ("identity changed", "core", "alter table core.orgs alter column id set generated by default",
     "core.orgs.id: identity a -> d"),
    ("generated column dropped", "worlds",
     "alter table worlds.returns alter column refund drop expression",
     "worlds.returns.refund: generated"),
    ("comment changed", "worlds", "comment on table worlds.returns is 'One return per year.'",
     "worlds.returns: comment"),
    ("partition detached", "worlds",
     "alter table worlds.documents detach partition worlds.documents_2023",
     "worlds.documents_2023: partition bound changed"),
    ("owner changed", "worlds", ROLE + " alter table worlds.forms owner to spectral_test_owner",
     "worlds.forms: owner postgres -> spectral_test_owner"),
    ("table added", "platform", "create table platform.extra (id int primary key)",
     "platform.extra: added"),
    ("table dropped", "platform", "drop table platform.rule_references",
     "platform.rule_references: dropped"),
    ("table renamed", "worlds", "alter table worlds.line_items rename to line_item",
     "worlds.line_items: renamed to worlds.line_item"),
    ("extension dependency dropped", "platform", "drop extension btree_gist cascade",
     "btree_gist (extension): dropped"),
    ("unlogged table", "core", "alter table core.audit_events set unlogged",
     "core.audit_events: persistence 'p' -> 'u'".replace("'", "")),
]


def test_there_are_at_least_30_kinds_of_change() -> None:
    assert len(CHANGES) >= 30
    assert len({c[0] for c in CHANGES}) == len(CHANGES)


@pytest.mark.parametrize(("schema", "ddl", "phrase"), [c[1:] for c in CHANGES],
                         ids=[c[0] for c in CHANGES])
def test_change_is_detected_in_the_right_schema(vcluster: Cluster, schema: str, ddl: str,
                                                phrase: str) -> None:
    dsn = fresh_db(vcluster)
    before = fp(dsn)
    with connect(dsn) as conn:
        conn.execute(ddl.encode())
    after = fp(dsn)
    cmp = compare(before, after)
    assert cmp.outcome is Outcome.MISMATCH
    changed = {s.name for s in cmp.schemas if s.outcome is Outcome.MISMATCH}
    assert changed == {schema}, [(s.name, s.differences) for s in cmp.schemas]
    diffs = next(s.differences for s in cmp.schemas if s.name == schema)
    assert any(phrase in d for d in diffs), diffs


def test_fingerprint_is_repeatable_and_self_compare_matches(vcluster: Cluster) -> None:
    dsn = fresh_db(vcluster, "tmpl_data")
    a, b = fp(dsn, content=True), fp(dsn, content=True)
    # every reference table is hashed column by column (the fast path), none fell back to text
    assert {t["method"] for t in a["tables"].values()} == {Method.COLUMN_HASH.value}
    assert a["schemas"] == b["schemas"] and a["tables"] == b["tables"]
    assert compare(a, b).outcome is Outcome.MATCH


def test_stable_under_statistics_physical_order_and_rewrites(vcluster: Cluster) -> None:
    dsn = fresh_db(vcluster, "tmpl_data")
    before = fp(dsn, content=True)
    with connect(dsn) as conn:
        conn.execute("analyze")
        conn.execute("cluster worlds.returns using returns_updated_idx")   # new physical order
        conn.execute("vacuum full worlds.line_items")                       # new relfilenode
        conn.execute("reindex table worlds.forms")
        conn.execute("update worlds.taxpayers set full_name = full_name")   # new tuple versions
    after = fp(dsn, content=True)
    cmp = compare(before, after)
    assert cmp.outcome is Outcome.MATCH, cmp.to_json()


def test_stable_regardless_of_creation_order(vcluster: Cluster) -> None:
    forward = ["create schema orderx", "create type orderx.mood as enum ('ok', 'sad')",
               "create table orderx.a (id int primary key, m orderx.mood)",
               "create table orderx.b (id int primary key, a_id int references orderx.a(id))",
               "create index b_a_idx on orderx.b (a_id)",
               "create function orderx.f(x int) returns int language sql as 'select x + 1'",
               "create view orderx.v as select a.id from orderx.a a"]
    backward = [forward[0], forward[1], forward[2], forward[5], forward[6], forward[3],
                forward[4]]
    prints = []
    for steps in (forward, backward):
        dsn = fresh_db(vcluster)
        with connect(dsn) as conn:
            conn.execute("create table orderx_pad (x int)" if steps is backward else "select 1")
            for step in steps:
                conn.execute(step.encode())
        prints.append(fp(dsn, schemas=("orderx",)))
    assert prints[0]["schemas"]["orderx"]["checksum"] == prints[1]["schemas"]["orderx"]["checksum"]


def test_stable_across_dump_and_restore(vcluster: Cluster, bins: PgBinaries) -> None:
    src = fresh_db(vcluster, "tmpl_data")
    dst = fresh_db(vcluster, "template0")
    dump = Path(vcluster.data_dir.parent) / "round-trip.dump"
    run([bins.path("pg_dump"), "-Fc", "-f", str(dump), src], timeout=300)
    run([bins.path("pg_restore"), "--exit-on-error", "-d", dst, str(dump)], timeout=300)
    with connect(dst) as conn:
        conn.execute("refresh materialized view worlds.yearly_totals")
    a, b = fp(src, content=True), fp(dst, content=True)
    cmp = compare(a, b)
    assert cmp.outcome is Outcome.MATCH, cmp.to_json()
    assert {k: v["checksum"] for k, v in a["schemas"].items()} == \
        {k: v["checksum"] for k, v in b["schemas"].items()}


def test_stable_across_a_physical_copy(vcluster: Cluster, bins: PgBinaries,
                                       work_dir: Path) -> None:
    from spectral.pg.osuser import make_owned_dir, server_identity

    src = fresh_db(vcluster, "tmpl_data")
    before = fp(src, content=True)
    target = make_owned_dir(work_dir / "copy", 0o700)
    run([bins.path("pg_basebackup"), "-D", str(target), "-X", "fetch", "-c", "fast",
         "-d", vcluster.conninfo()], timeout=300, run_as=server_identity())
    copy = _make_copy_cluster(bins, work_dir, target)
    try:
        dbname = conninfo_to_dict(src)["dbname"]
        assert isinstance(dbname, str)
        after = fp(with_dbname(copy.conninfo(), dbname), content=True)
    finally:
        copy.stop()
    assert compare(before, after).outcome is Outcome.MATCH


def _make_copy_cluster(bins: PgBinaries, work_dir: Path, data: Path) -> Cluster:
    from spectral.pg.cluster import free_port, socket_dir_for

    c = Cluster(bins, data, socket_dir_for(work_dir / "copy-run"), free_port(),
                work_dir / "copy-log" / "pg.log")
    c.start()
    return c


def test_content_detects_an_update_with_the_same_row_count(vcluster: Cluster) -> None:
    dsn = fresh_db(vcluster, "tmpl_data")
    before = fp(dsn, content=True)
    with connect(dsn) as conn:
        conn.execute("update worlds.line_items set amount = amount + 0.01 where id = 17")
    cmp = compare(before, fp(dsn, content=True))
    bad = [t for t in cmp.tables if t.outcome is Outcome.MISMATCH]
    assert [t.name for t in bad] == ["worlds.line_items"]
    assert "content differs" in bad[0].detail


def test_table_without_primary_key_and_unhashable_types(vcluster: Cluster) -> None:
    dsn = fresh_db(vcluster)
    with connect(dsn) as conn:
        conn.execute("create table core.nokey (p point, note text)")
        conn.execute("insert into core.nokey values (point(1, 2), 'a'), (point(1, 2), 'a')")
    doc = fp(dsn, content=True)
    facts = doc["tables"]["core.nokey"]
    assert facts["rows"] == 2 and facts["method"] == Method.COLUMN_HASH.value
    assert facts["content"] is not None
    with connect(dsn) as conn:
        conn.execute("update core.nokey set note = 'b' where ctid = (select min(ctid) from "
                     "core.nokey)")
    assert fp(dsn, content=True)["tables"]["core.nokey"]["content"] != facts["content"]


def test_unreadable_table_is_could_not_verify(vcluster: Cluster) -> None:
    dsn = fresh_db(vcluster, "tmpl_data")
    with connect(dsn) as conn:
        conn.execute(ROLE)
        conn.execute("alter role spectral_test_owner login")
        conn.execute("grant usage on schema core, worlds, platform to spectral_test_owner")
        conn.execute("grant select on all tables in schema core, worlds, platform "
                     "to spectral_test_owner")
        conn.execute("revoke select on worlds.forms from spectral_test_owner")
    limited = dsn.replace("user=postgres", "user=spectral_test_owner")
    doc = fp(limited, content=True)
    assert doc["tables"]["worlds.forms"]["status"] == "could_not_verify"
    assert "permission denied" in doc["tables"]["worlds.forms"]["reason"]
    assert doc["tables"]["worlds.forms"]["rows"] is None
    # RLS-enabled tables are refused rather than silently filtered for a role without BYPASSRLS
    assert doc["tables"]["worlds.returns"]["status"] == "could_not_verify"
    assert "row-level security" in doc["tables"]["worlds.returns"]["reason"]
    cmp = compare(fp(dsn, content=True), doc)
    assert cmp.outcome is Outcome.COULD_NOT_VERIFY


def test_missing_schema_is_a_mismatch(vcluster: Cluster) -> None:
    dsn = fresh_db(vcluster)
    before = fp(dsn)
    with connect(dsn) as conn:
        conn.execute("drop schema platform cascade")
    cmp = compare(before, fp(dsn))
    assert cmp.outcome is Outcome.MISMATCH
    assert next(s for s in cmp.schemas if s.name == "platform").differences == [
        "schema platform: missing in the second"]


def test_managed_schema_drift_is_reported_but_does_not_fail(vcluster: Cluster) -> None:
    dsn = fresh_db(vcluster)
    before = fp(dsn)
    with connect(dsn) as conn:
        conn.execute("alter table auth.users add column phone text")
    after = fp(dsn)
    cmp = compare(before, after)
    assert cmp.outcome is Outcome.MATCH
    assert [d.name for d in cmp.drift if d.outcome is Outcome.MISMATCH] == ["auth"]
    assert compare(before, after, include_managed=True).outcome is Outcome.MISMATCH


def test_range_queries_and_split_are_pure() -> None:
    plan = TablePlan("worlds", "line_items", blocks=40000, method=Method.COLUMN_HASH,
                     last_change=None, text_columns=("kind",),
                     column_hashes=(("id", "hashint8extended", "pg_catalog.int8"),
                                    ("kind", "hashenumextended", "pg_catalog.anyenum"),
                                    ("p", None, None)))
    assert split(plan, 16384) == [(0, 16384), (16384, 32768), (32768, None)]
    small = TablePlan("core", "orgs", blocks=3, method=Method.COUNT, last_change="updated_at")
    assert split(small) == [(None, None)]
    text = range_query(plan, 0, 16384).as_string(None)
    assert 'coalesce(hashint8extended(t."id"::pg_catalog.int8, 24301)' in text
    assert 'hashtextextended(t."kind"::text, 24302)' in text      # enum: by its label
    assert 'hashtextextended(t."p"::text, 24303)' in text         # no hash function: text
    assert " # " in text
    assert "t.ctid >= '(0,0)'::tid and t.ctid < '(16384,0)'::tid" in text
    assert "max(t.\"updated_at\")" in range_query(small, None, None).as_string(None)


def test_diff_table_words() -> None:
    a = {"rows": 10, "content": "aa", "method": "record-hash", "status": "ok"}
    b = {**a, "rows": 9}
    assert diff_table("t", a, b, True).detail == "rows 10 -> 9"
    assert diff_table("t", a, None, True).detail == "missing in the second"


def test_content_detects_values_swapped_between_columns_and_nulls(vcluster: Cluster) -> None:
    dsn = fresh_db(vcluster, "tmpl_data")
    before = fp(dsn, content=True)
    with connect(dsn) as conn:
        conn.execute("update worlds.line_items set line_no = description, "
                     "description = line_no where id = 5")
        conn.execute("update core.domain_invites set accepted_at = null where id = 3")
    bad = {t.name for t in compare(before, fp(dsn, content=True)).tables
           if t.outcome is Outcome.MISMATCH}
    assert bad == {"worlds.line_items", "core.domain_invites"}


def test_content_sees_every_character_of_char_and_bit_columns(vcluster: Cluster) -> None:
    """char(n) and bit(n) are hashed whole: a cast to "character" or "bit" would mean char(1)
    and bit(1) and hash only the first character (a bug of the first column-hash)."""
    dsn = fresh_db(vcluster, "tmpl_data")
    with connect(dsn) as conn:
        conn.execute("create table core.codes (id int primary key, code char(6), flags bit(8))")
        conn.execute("insert into core.codes values (1, 'AB1234', B'10000000')")
    before = fp(dsn, content=True)
    with connect(dsn) as conn:
        conn.execute("update core.codes set code = 'AB9999' where id = 1")
    after = fp(dsn, content=True)
    with connect(dsn) as conn:
        conn.execute("update core.codes set code = 'AB1234', flags = B'10000001' where id = 1")
    flags = fp(dsn, content=True)
    with connect(dsn) as conn:                       # worlds.taxpayers.ssn_last4 is char(4)
        conn.execute("update worlds.taxpayers set ssn_last4 = overlay(ssn_last4 placing "
                     "(case when right(ssn_last4, 1) = '0' then '1' else '0' end) from 4) "
                     "where id = (select min(id) from worlds.taxpayers)")
    taxpayer = fp(dsn, content=True)
    assert {t.name for t in compare(before, after).tables
            if t.outcome is Outcome.MISMATCH} == {"core.codes"}
    assert {t.name for t in compare(before, flags).tables
            if t.outcome is Outcome.MISMATCH} == {"core.codes"}
    assert {t.name for t in compare(flags, taxpayer).tables
            if t.outcome is Outcome.MISMATCH} == {"worlds.taxpayers"}


# (type, a value, another value that differs only late in the value): the content checksum must
# tell them apart, whatever the type
TYPE_VALUES = [
    ("smallint", "1", "2"), ("integer", "100001", "100002"), ("bigint", "9000000001", "9000000002"),
    ("numeric(12,4)", "12.3401", "12.3402"), ("real", "1.25", "1.5"),
    ("double precision", "1.000001", "1.000002"), ("boolean", "true", "false"),
    ("text", "'abcdef'", "'abcdeg'"), ("varchar(10)", "'abcdef'", "'abcdeg'"),
    ("char(8)", "'abcdef'", "'abcdeg'"), ('"char"', "'a'", "'b'"),
    ("bit(8)", "B'10000000'", "B'10000001'"), ("varbit(8)", "B'1000'", "B'1001'"),
    ("bytea", r"'\x0102'", r"'\x0103'"),
    ("uuid", "'00000000-0000-0000-0000-000000000001'", "'00000000-0000-0000-0000-000000000002'"),
    ("date", "'2026-01-01'", "'2026-01-02'"), ("time", "'10:00:00'", "'10:00:01'"),
    ("timetz", "'10:00:00+00'", "'10:00:01+00'"),
    ("timestamp", "'2026-01-01 10:00:00'", "'2026-01-01 10:00:00.000001'"),
    ("timestamptz", "'2026-01-01 10:00:00+00'", "'2026-01-01 10:00:00.000001+00'"),
    ("interval", "'1 day'", "'1 day 1 second'"), ("money", "'1.01'", "'1.02'"),
    ("inet", "'10.0.0.1'", "'10.0.0.2'"), ("cidr", "'10.0.0.0/24'", "'10.0.1.0/24'"),
    ("macaddr", "'08:00:2b:01:02:03'", "'08:00:2b:01:02:04'"),
    ("json", """'{"a": 1}'""", """'{"a": 2}'"""),
    ("jsonb", """'{"a": [1, 2]}'""", """'{"a": [1, 3]}'"""),
    ("integer[]", "'{1,2,3}'", "'{1,2,4}'"), ("text[]", "'{a,b}'", "'{a,c}'"),
    ("int4range", "'[1,10)'", "'[1,11)'"),
    ("tstzrange", "'[2026-01-01,2026-02-01)'", "'[2026-01-01,2026-02-02)'"),
    ("point", "'(1,2)'", "'(1,3)'"),   # (xml: the embedded build has no libxml)
    ("tsvector", "'a b'", "'a c'"), ("oid", "1", "2"), ("pg_lsn", "'0/1'", "'0/2'"),
]


def test_content_changes_for_a_late_change_in_every_type(vcluster: Cluster) -> None:
    """One column per type; changing one value (late in it where it has length) must change
    that table's content checksum and nothing else's."""
    dsn = fresh_db(vcluster, "tmpl_schema")
    with connect(dsn) as conn:
        for i, (typ, a, _b) in enumerate(TYPE_VALUES):
            conn.execute(f"create table core.t{i} (id int primary key, v {typ})")
            conn.execute(f"insert into core.t{i} values (1, {a}::{typ}), (2, null)")
    before = fp(dsn, content=True)
    with connect(dsn) as conn:
        for i, (typ, _a, b) in enumerate(TYPE_VALUES):
            conn.execute(f"update core.t{i} set v = {b}::{typ} where id = 1")
    after = fp(dsn, content=True)
    changed = {t.name for t in compare(before, after).tables if t.outcome is Outcome.MISMATCH}
    missed = [typ for i, (typ, _a, _b) in enumerate(TYPE_VALUES) if f"core.t{i}" not in changed]
    assert missed == []
    assert all(after["tables"][f"core.t{i}"]["status"] == "ok" for i in range(len(TYPE_VALUES)))
