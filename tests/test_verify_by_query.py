"""A copy reachable only through a read-only SQL endpoint (Supabase's query/read-only) is
fingerprinted exactly as a direct connection would: same catalog, counts and content on the
reference database, the second world and every type family; in a handful of requests; whatever
the endpoint's session settings; and row-level security that applies to the reading role makes
a table could-not-verify, never a short count."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import ClusterFactory
from read_only_endpoint import StatementError, ensure_role, run_read_only
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect, with_dbname
from spectral.verify.by_query import QueryReader, StatementFailed, inline
from spectral.verify.compare import Outcome, compare
from spectral.verify.fingerprint import Options, take
from test_type_matrix import MATRIX, SETUP

PARTS = ("schemas", "managed", "tables", "partitions", "sequences", "content",
         "catalog_version")


def reader(dsn: str) -> QueryReader:
    def run(query: str) -> list[dict[str, Any]]:
        try:
            return run_read_only(dsn, query)
        except StatementError as exc:
            raise StatementFailed(str(exc)) from None
    return QueryReader(run, "the test database")


def same(dsn: str, opts: Options) -> QueryReader:
    """The endpoint's fingerprint equals the direct one, part for part."""
    ensure_role(dsn)
    direct, through = take(dsn, opts), (r := reader(dsn)).fingerprint(opts)
    for part in PARTS:
        assert through.to_json().get(part) == direct.to_json().get(part), part
    assert compare(direct, through).outcome is Outcome.MATCH
    assert str(through.source.read_by).startswith("read-only query endpoint")
    return r


def test_inline_writes_parameters_as_literals() -> None:
    assert inline("select %s, '%%'", ("a'b",)) == "select 'a''b', '%'"
    assert inline("x = %(s)s and y like 'a%%'", {"s": "o%(s)s"}) == \
        "x = 'o%(s)s' and y like 'a%'"
    assert inline("n = any(%s)", (["a", "b'c"],)) == "n = any('{a,b''c}')"


def test_reference_database_with_content(reference_cluster: Cluster) -> None:
    opts = Options(("core", "worlds", "platform"), content=True)
    r = same(reference_cluster.conninfo(), opts)
    # plan, catalogs (4 schemas a request), probes together, content in 1 GB batches
    assert r.requests <= 6, r.requests


def test_second_world_and_row_security(world: tuple[Cluster, str]) -> None:
    _cluster, dsn = world
    opts = Options(("public",), content=True)
    before = take(dsn, opts)
    same(dsn, opts)
    with connect(dsn) as conn:                 # one changed value is found through the endpoint
        conn.execute("update orders set note = note || '.' where id = (select min(id) "
                     "from orders)")
    changed = compare(before, reader(dsn).fingerprint(opts))
    assert changed.outcome is Outcome.MISMATCH
    assert [t.name for t in changed.tables if t.outcome is Outcome.MISMATCH] == ["public.orders"]
    ensure_role(dsn, bypass_rls=False)
    doc = reader(dsn).fingerprint(Options(("public",), content=True))
    secured = {n for n, t in doc.tables.items() if not t.ok}
    assert "public.customers" in secured
    assert "supabase_read_only_user" in str(doc.tables["public.customers"].reason)
    assert doc.tables["public.customers"].rows is None
    assert doc.tables["public.orders"].ok


def test_every_type_family(make_cluster: ClusterFactory) -> None:
    c = make_cluster()
    with c.connect() as conn:
        conn.execute("create database matrix")
    dsn = with_dbname(c.conninfo(), "matrix")
    with connect(dsn) as conn:
        conn.execute(SETUP)
        for i, (typ, a, _b) in enumerate(MATRIX):
            conn.execute(f"create table m.t{i} (id int primary key, v {typ})")
            conn.execute(f"insert into m.t{i} values (1, {a}::{typ}), (2, null)")
    same(dsn, Options(("m",), content=True))


def test_a_missing_schema_is_could_not_verify_when_required(reference_cluster: Cluster) -> None:
    from spectral.errors import CouldNotVerify

    ensure_role(reference_cluster.conninfo())
    with pytest.raises(CouldNotVerify, match="does not exist"):
        reader(reference_cluster.conninfo()).fingerprint(
            Options(("core", "nosuch"), require_schemas=True))


def test_a_statement_the_endpoint_refuses_costs_only_its_table(
        world: tuple[Cluster, str]) -> None:
    """A batch that fails is retried one table at a time: the table whose statement fails is
    could-not-verify (its hash probe falls back to text first), the others are read."""
    _cluster, dsn = world
    ensure_role(dsn)
    direct = take(dsn, Options(("public",), content=True))
    inner = reader(dsn)

    def run(query: str) -> list[dict[str, Any]]:
        if '"public"."payments"' in query:
            raise StatementFailed("permission denied for table payments")
        return inner.run(query)
    doc = QueryReader(run, "a flaky endpoint").fingerprint(Options(("public",), content=True))
    tables, expected = dict(doc.tables), dict(direct.tables)
    payments = tables.pop("public.payments")
    assert payments.status == "could_not_verify" and payments.rows is None
    assert "could not read public.payments" in str(payments.reason)
    expected.pop("public.payments")
    assert tables == expected
