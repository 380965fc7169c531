"""The verification engine on real clusters: sensitive to every kind of schema change (in the
right schema, named in the diff), stable across everything that must not matter."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect, with_dbname
from spectral.runner import run
from spectral.verify.compare import Outcome, compare
from spectral.verify.content import Method
from verify_support import ROLE, fp, fresh_db, vcluster

__all__ = ["vcluster"]


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
     "default privileges on tables created by postgres in schema core: added"),
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
    ("replica identity full", "worlds", "alter table worlds.forms replica identity full",
     "worlds.forms: replica_identity"),
    ("replica identity index", "core", "alter table core.orgs replica identity using index "
     "orgs_slug_key", "core.orgs: replica_index"),
    ("table access method", "core", "create access method heap2 type table handler "
     "heap_tableam_handler; alter table core.audit_events set access method heap2",
     "core.audit_events: access_method"),
    ("table added to a publication", "platform", "create publication pub_rules for table "
     "platform.rules", "platform.rules: publications"),
    ("schema published", "worlds", "create publication pub_worlds for tables in schema worlds",
     "worlds.returns: publications"),
    ("storage parameter", "worlds", "alter table worlds.returns set (fillfactor = 70)",
     "worlds.returns: options"),
    ("column storage", "worlds", "alter table worlds.forms alter column fields set storage "
     "external", "worlds.forms.fields"),
    ("column compression", "core", "alter table core.audit_events alter column detail set "
     "compression pglz", "core.audit_events.detail"),
    ("column statistics target", "platform", "alter table platform.corpora alter column slug "
     "set statistics 500", "platform.corpora.slug"),
    ("clustered on an index", "core", "cluster core.orgs using orgs_slug_key",
     "orgs_slug_key (index): clustered"),
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
    assert {t.method for t in a.tables.values()} == {Method.COLUMN_HASH.value}
    assert a.schemas == b.schemas and a.tables == b.tables
    assert compare(a, b).outcome is Outcome.MATCH


def test_stable_under_statistics_physical_order_and_rewrites(vcluster: Cluster) -> None:
    dsn = fresh_db(vcluster, "tmpl_data")
    before = fp(dsn, content=True)
    with connect(dsn) as conn:
        conn.execute("analyze")
        conn.execute("cluster worlds.returns using returns_updated_idx")   # new physical order
        conn.execute("alter table worlds.returns set without cluster")     # (the mark is schema)
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
    assert prints[0].schemas["orderx"].checksum == prints[1].schemas["orderx"].checksum


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
    assert {k: v.checksum for k, v in a.schemas.items()} == \
        {k: v.checksum for k, v in b.schemas.items()}


@pytest.mark.server
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
