"""The type matrix on PostgreSQL 15 and 18: every built-in type family, arrays, ranges,
multiranges, domains over them, composites, enums and the extension types both builds ship
(citext, hstore, ltree, cube). For each, a late change inside a value changes that table's
content checksum and nothing else's, and a dump and restore changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SYSTEM_PG15, ClusterFactory
from spectral.pg.binaries import PgBinaries, find_binaries
from spectral.pg.conn import connect, with_dbname
from spectral.runner import run
from spectral.verify.compare import Outcome, compare
from spectral.verify.fingerprint import Options, take
from test_verify_content import TYPE_VALUES

SETUP = """
create extension citext; create extension hstore; create extension ltree; create extension cube;
create schema m;
create type m.mood as enum ('ok', 'sad', 'glad');
create type m.pair as (n int, label text);
create domain m.posint as int check (value > 0);
create domain m.tags as text[] check (cardinality(value) < 10);
create domain m.span as int4range;
"""
MORE = [
    ("int8range", "'[1,10)'", "'[1,11)'"), ("numrange", "'[1.5,2.5)'", "'[1.5,2.6)'"),
    ("daterange", "'[2026-01-01,2026-02-01)'", "'[2026-01-01,2026-02-02)'"),
    ("int4multirange", "'{[1,3),[5,7)}'", "'{[1,3),[5,8)}'"),
    ("datemultirange", "'{[2026-01-01,2026-01-05)}'", "'{[2026-01-01,2026-01-06)}'"),
    ("m.mood", "'ok'", "'sad'"), ("m.mood[]", "'{ok,ok}'", "'{ok,glad}'"),
    ("m.pair", "'(1,abcdef)'", "'(1,abcdeg)'"), ("m.pair[]", "'{\"(1,a)\",\"(2,b)\"}'",
                                                   "'{\"(1,a)\",\"(2,c)\"}'"),
    ("m.posint", "1", "2"), ("m.tags", "'{a,b}'", "'{a,c}'"), ("m.span", "'[1,4)'", "'[1,5)'"),
    ("citext", "'Abcdef'", "'Abcdeg'"), ("hstore", "'a=>1,b=>2'", "'a=>1,b=>3'"),
    ("ltree", "'a.b.c'", "'a.b.d'"), ("cube", "'(1,2),(3,4)'", "'(1,2),(3,5)'"),
    ("tsquery", "'a & b'", "'a & c'"), ("jsonpath", "'$.a.b'", "'$.a.c'"),
    ("name", "'abcdef'", "'abcdeg'"), ("macaddr8", "'08:00:2b:01:02:03:04:05'",
                                       "'08:00:2b:01:02:03:04:06'"),
    ("line", "'{1,2,3}'", "'{1,2,4}'"), ("lseg", "'[(0,0),(1,1)]'", "'[(0,0),(1,2)]'"),
    ("box", "'(1,1),(0,0)'", "'(1,2),(0,0)'"), ("path", "'[(0,0),(1,1)]'", "'[(0,0),(1,2)]'"),
    ("polygon", "'((0,0),(1,1),(1,0))'", "'((0,0),(1,1),(2,0))'"),
    ("circle", "'<(1,2),3>'", "'<(1,2),4>'"), ("bigint[]", "'{1,2}'", "'{1,3}'"),
    ("int4range[]", "'{\"[1,2)\"}'", "'{\"[1,3)\"}'"),
]
MATRIX = TYPE_VALUES + MORE


@pytest.mark.parametrize("major", ["18", "15"])
def test_every_type_family_on_both_majors(major: str, make_cluster: ClusterFactory,
                                          bins: PgBinaries, work_dir: Path) -> None:
    if major == "15":
        if not (SYSTEM_PG15 / "postgres").exists():
            pytest.skip("no Debian PostgreSQL 15")
        bins = find_binaries(SYSTEM_PG15)
    c = make_cluster(bins)
    with c.connect() as conn:
        conn.execute("create database matrix")
        conn.execute("create database copy")
    src, dst = with_dbname(c.conninfo(), "matrix"), with_dbname(c.conninfo(), "copy")
    with connect(src) as conn:
        conn.execute(SETUP)
        for i, (typ, a, _b) in enumerate(MATRIX):
            conn.execute(f"create table m.t{i} (id int primary key, v {typ})")
            conn.execute(f"insert into m.t{i} values (1, {a}::{typ}), (2, null)")
    opts = Options(("m",), content=True)
    before = take(src, opts)
    unreadable = [MATRIX[int(n[3:])][0] for n, t in before.tables.items() if not t.ok]
    assert unreadable == []
    dump = work_dir / f"matrix{major}.dump"
    run([bins.path("pg_dump"), "-Fc", "-f", str(dump), src], timeout=300)
    run([bins.path("pg_restore"), "--exit-on-error", "-d", dst, str(dump)], timeout=300)
    restored = compare(before, take(dst, opts))
    assert restored.outcome is Outcome.MATCH, restored.to_json()
    with connect(src) as conn:
        for i, (typ, _a, b) in enumerate(MATRIX):
            conn.execute(f"update m.t{i} set v = {b}::{typ} where id = 1")
    changed = {t.name for t in compare(before, take(src, opts)).tables
               if t.outcome is Outcome.MISMATCH}
    missed = [typ for i, (typ, _a, _b) in enumerate(MATRIX) if f"m.t{i}" not in changed]
    assert missed == []
