"""Shared by the verification tests: one cluster with schema-only and seeded template
databases, fresh databases cloned from them, and the fingerprint of one."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import _make_cluster
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect, with_dbname
from spectral.refdb.author import author
from spectral.refdb.migrate import migrate
from spectral.refdb.seed import seed
from spectral.verify.document import Fingerprint
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
        c.stop(timeout=20, discard=True)


def fresh_db(c: Cluster, template: str = "tmpl_schema") -> str:
    name = f"db{next(_ids)}"
    with c.connect() as conn:
        conn.execute(f"create database {name} template {template}")
    return with_dbname(c.conninfo(), name)


def fp(dsn: str, content: bool = False, schemas: tuple[str, ...] = PROTECTED) -> Fingerprint:
    return take(dsn, Options(schemas, content=content))


ROLE = ("do $$ begin if not exists (select from pg_roles where rolname = 'spectral_test_owner') "
        "then create role spectral_test_owner; end if; end $$;")
