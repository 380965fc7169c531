"""The reference database carries the spread of PostgreSQL objects the verification engine is
judged on, and its seed is deterministic and linear in scale."""

from __future__ import annotations

import pytest

from conftest import ClusterFactory, table_digests
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.refdb import pools
from spectral.refdb.migrate import migrate, migrations
from spectral.refdb.seed import TABLES, Counts

CATALOG_CHECKS = {
    "enums": "select count(*) from pg_type t join pg_namespace n on n.oid = t.typnamespace "
             "where t.typtype = 'e' and n.nspname in ('core','worlds','platform')",
    "domains": "select count(*) from pg_type t join pg_namespace n on n.oid = t.typnamespace "
               "where t.typtype = 'd' and n.nspname in ('core','worlds')",
    "identity columns": "select count(*) from pg_attribute a join pg_class c on c.oid = a.attrelid "
                        "join pg_namespace n on n.oid = c.relnamespace where a.attidentity <> '' "
                        "and n.nspname in ('core','worlds','platform')",
    "free-standing sequences": "select count(*) from pg_class c join pg_namespace n on "
                               "n.oid = c.relnamespace where c.relkind = 'S' and c.relname "
                               "in ('invite_code_seq','return_number_seq')",
    "generated columns": "select count(*) from pg_attribute where attgenerated = 's' "
                         "and attrelid = 'worlds.returns'::regclass",
    "foreign keys": "select count(*) from pg_constraint where contype = 'f' and connamespace "
                    "in ('core'::regnamespace, 'worlds'::regnamespace, 'platform'::regnamespace)",
    "check constraints": "select count(*) from pg_constraint where contype = 'c' and connamespace "
                         "in ('core'::regnamespace, 'worlds'::regnamespace)",
    "exclusion constraints": "select count(*) from pg_constraint where contype = 'x'",
    "partial indexes": "select count(*) from pg_index where indpred is not null",
    "expression indexes": "select count(*) from pg_index where indexprs is not null",
    "views": "select count(*) from pg_views where schemaname in ('core','worlds','platform')",
    "materialized views": "select count(*) from pg_matviews where schemaname = 'worlds'",
    "plpgsql functions": "select count(*) from pg_proc p join pg_language l on l.oid = p.prolang "
                         "where l.lanname = 'plpgsql' and p.pronamespace in "
                         "('core'::regnamespace, 'worlds'::regnamespace, 'platform'::regnamespace)",
    "security definer functions": "select count(*) from pg_proc where prosecdef and pronamespace "
                                  "= 'platform'::regnamespace",
    "triggers": "select count(*) from pg_trigger where not tgisinternal",
    "rls policies": "select count(*) from pg_policy",
    "forced rls": "select count(*) from pg_class where relforcerowsecurity",
    "grants": "select count(*) from information_schema.role_table_grants where grantee in "
              "('authenticated','service_role','spectral_reviewer')",
    "comments": "select count(*) from pg_description d join pg_class c on c.oid = d.objoid "
                "join pg_namespace n on n.oid = c.relnamespace where n.nspname in "
                "('core','worlds','platform')",
    "partitioned tables": "select count(*) from pg_partitioned_table",
    "partitions": "select count(*) from pg_inherits i join pg_class c on c.oid = i.inhparent "
                  "where c.relkind = 'p'",
    "jsonb columns": "select count(*) from information_schema.columns where data_type = 'jsonb' "
                     "and table_schema in ('core','worlds','platform')",
    "numeric money columns": "select count(*) from information_schema.columns where "
                             "domain_name = 'money' and table_schema = 'worlds'",
    "extension dependency": "select count(*) from pg_extension where extname = 'btree_gist'",
}


@pytest.mark.parametrize("what", sorted(CATALOG_CHECKS))
def test_reference_database_has_object_kind(reference_cluster: Cluster, what: str) -> None:
    with reference_cluster.connect() as conn:
        row = conn.execute(CATALOG_CHECKS[what]).fetchone()
    assert row is not None and row[0] > 0, f"the reference database has no {what}"


def test_auth_users_is_referenced_by_core_users(reference_cluster: Cluster) -> None:
    with reference_cluster.connect() as conn:
        row = conn.execute("select confrelid::regclass::text from pg_constraint where "
                           "conrelid = 'core.users'::regclass and contype = 'f' and "
                           "confrelid = 'auth.users'::regclass").fetchone()
        assert row == ("auth.users",)
        orphans = conn.execute("select count(*) from core.users u left join auth.users a "
                               "on a.id = u.id where a.id is null").fetchone()
        assert orphans == (0,)


def test_seeded_data_satisfies_every_foreign_key(reference_cluster: Cluster) -> None:
    """The seed skips per-row FK triggers; prove the data is consistent anyway by validating
    each foreign key from scratch."""
    with reference_cluster.connect() as conn:
        fks = conn.execute("select conrelid::regclass::text, conname from pg_constraint "
                           "where contype = 'f' and connamespace in ('core'::regnamespace, "
                           "'worlds'::regnamespace, 'platform'::regnamespace)").fetchall()
        assert len(fks) >= 10
        for table, name in fks:
            with conn.transaction(force_rollback=True):
                ddl_row = conn.execute("select pg_get_constraintdef(oid) from pg_constraint "
                                       "where conname = %s and conrelid = %s::regclass",
                                       (name, table)).fetchone()
                assert ddl_row is not None
                conn.execute(f'alter table {table} drop constraint "{name}"')
                conn.execute(f'alter table {table} add constraint "{name}" {ddl_row[0]}')


def test_migrations_are_ordered_and_apply_on_postgres_15(make_cluster: ClusterFactory,
                                                         pg15: PgBinaries) -> None:
    versions = [m.version for m in migrations()]
    assert versions == sorted(versions) and len(versions) >= 5
    c = make_cluster(pg15)
    with c.connect() as conn:
        assert len(migrate(conn)) == len(versions)
        assert migrate(conn) == []   # idempotent


def test_seed_counts_are_linear_in_scale() -> None:
    one, ten = Counts(1), Counts(10)
    for spec in TABLES:
        if spec.table == "core.partners":
            continue
        assert spec.count(ten) == 10 * spec.count(one), spec.table


def test_seed_chunks_are_deterministic_and_copy_safe() -> None:
    counts = Counts(2)
    for spec in TABLES:
        n = min(spec.count(counts), 500)
        first = spec.chunk(counts, 1, n + 1)
        assert first == spec.chunk(counts, 1, n + 1)
        lines = first.splitlines()
        assert len(lines) == n
        assert all(line.count("\t") == len(spec.columns) - 1 for line in lines), spec.table


@pytest.mark.parametrize("scale", [150, 1000])
def test_seed_chunks_at_large_scale(scale: int) -> None:
    """The last rows of every table at a large scale render (no pool indexing past its end)."""
    counts = Counts(scale)
    for spec in TABLES:
        n = spec.count(counts)
        lines = spec.chunk(counts, max(1, n - 200), n + 1).splitlines()
        assert len(lines) == n + 1 - max(1, n - 200)


def test_pools_never_need_copy_escaping() -> None:
    for pool in (pools.names(), pools.return_data(), pools.form_fields(), pools.audit_frags(),
                 pools.line_frags(), pools.document_frags()):
        for value in pool:
            assert "\n" not in value and "\\" not in value


def test_seed_is_byte_identical_across_runs(make_cluster: ClusterFactory) -> None:
    from spectral.refdb.author import author
    from spectral.refdb.seed import seed

    digests = []
    for _ in range(2):
        c = make_cluster()
        with c.connect() as conn:
            migrate(conn)
        seed(c.conninfo(), 1)
        with c.connect() as conn:
            author(conn)
        digests.append(table_digests(c.conninfo()))
        c.stop()
    assert digests[0] == digests[1]
    assert len(digests[0]) >= 15
