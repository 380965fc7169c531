"""The verification engine, continued: content checksums, physical copies, tables without a
key, unreadable and missing schemas, and the pure helpers."""

from __future__ import annotations

from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect
from spectral.verify.compare import Outcome, compare, diff_table
from spectral.verify.content import Method, TablePlan, range_query, split
from spectral.verify.document import TableFacts
from verify_support import ROLE, fp, fresh_db, vcluster

__all__ = ["vcluster"]


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
    facts = doc.tables["core.nokey"]
    assert facts.rows == 2 and facts.method == Method.COLUMN_HASH.value
    assert facts.content is not None
    with connect(dsn) as conn:
        conn.execute("update core.nokey set note = 'b' where ctid = (select min(ctid) from "
                     "core.nokey)")
    assert fp(dsn, content=True).tables["core.nokey"].content != facts.content


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
    assert doc.tables["worlds.forms"].status == "could_not_verify"
    assert "permission denied" in str(doc.tables["worlds.forms"].reason)
    assert doc.tables["worlds.forms"].rows is None
    # RLS-enabled tables are refused rather than silently filtered for a role without BYPASSRLS
    assert doc.tables["worlds.returns"].status == "could_not_verify"
    assert "row-level security" in str(doc.tables["worlds.returns"].reason)
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
    assert diff_table("t", TableFacts.from_json(a), TableFacts.from_json(b), True).detail == \
        "rows 10 -> 9"
    assert diff_table("t", TableFacts.from_json(a), None, True).detail == "missing in the second"


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
    assert all(after.tables[f"core.t{i}"].ok for i in range(len(TYPE_VALUES)))


def test_a_schema_or_table_on_neither_side_is_could_not_verify(vcluster: Cluster) -> None:
    dsn = fresh_db(vcluster)
    doc = fp(dsn, schemas=("core", "nosuch"))
    cmp = compare(doc, fp(dsn, schemas=("core", "nosuch")))
    assert cmp.outcome is Outcome.COULD_NOT_VERIFY
    nosuch = next(s for s in cmp.schemas if s.name == "nosuch")
    assert nosuch.outcome is Outcome.COULD_NOT_VERIFY and "neither side" in nosuch.differences[0]
    spot = compare(doc, doc, tables=["core.users", "core.no_such_table"])
    assert [(t.name, t.outcome) for t in spot.tables] == [
        ("core.users", Outcome.MATCH), ("core.no_such_table", Outcome.COULD_NOT_VERIFY)]


def test_a_partitioned_parent_is_counted_over_its_partitions(vcluster: Cluster) -> None:
    dsn = fresh_db(vcluster)
    with connect(dsn) as conn:
        conn.execute("create table core.events (id int, at date) partition by range (at)")
        conn.execute("create table core.events_1 partition of core.events "
                     "for values from ('2026-01-01') to ('2026-07-01')")
        conn.execute("create table core.events_2 partition of core.events "
                     "for values from ('2026-07-01') to ('2027-01-01')")
        conn.execute("insert into core.events select g, date '2026-01-01' + g "
                     "from generate_series(0, 299) g")
    before = fp(dsn, schemas=("core",))
    with connect(dsn) as conn:
        conn.execute("delete from core.events where id = 250")     # in the second partition
    after = fp(dsn, schemas=("core",))
    same = compare(before, before, tables=["core.events"])
    assert same.tables[0].outcome is Outcome.MATCH and same.tables[0].rows == (300, 300)
    differ = compare(before, after, tables=["core.events"])
    assert differ.tables[0].outcome is Outcome.MISMATCH and differ.tables[0].rows == (300, 299)


def test_two_live_sides_are_read_with_one_schema_list(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from spectral.config.load import embedded_default
    from spectral.errors import UsageError
    from spectral.verify.targets import _one_schema_list

    cfg = embedded_default(tmp_path)
    assert _one_schema_list(cfg, "host=/x dbname=a", "local") == ["core", "worlds", "platform"]
    with pytest.raises(UsageError, match="--schemas"):
        _one_schema_list(cfg, "host=/x dbname=a", "host=/y dbname=b")


def test_a_materialized_views_populated_state_is_part_of_the_fingerprint(
        vcluster: Cluster) -> None:
    dsn = fresh_db(vcluster)
    with connect(dsn) as conn:
        conn.execute("create materialized view core.org_count as select count(*) from core.orgs "
                     "with no data")
    before = fp(dsn)
    with connect(dsn) as conn:
        conn.execute("refresh materialized view core.org_count")
    cmp = compare(before, fp(dsn))
    core = next(s for s in cmp.schemas if s.name == "core")
    assert core.outcome is Outcome.MISMATCH
    assert any("core.org_count" in d and "populated" in d for d in core.differences)


def test_an_older_snapshot_compares_on_what_both_catalog_versions_saw(
        vcluster: Cluster) -> None:
    """A snapshot taken before the catalog described replica identity (version 1) still
    matches the same database fingerprinted now."""
    from spectral.verify.catalog import ADDED_IN
    from spectral.verify.document import Fingerprint, SchemaEntry
    from spectral.verify.fingerprint import seal

    dsn = fresh_db(vcluster)
    now = fp(dsn).to_json()
    new = {k for kinds in ADDED_IN.values() for keys in kinds.values() for k in keys}

    def v1(obj: dict) -> dict:  # type: ignore[type-arg]
        out = {a: v for a, v in obj.items() if a not in new}
        if isinstance(out.get("columns"), list) and out["columns"] and \
                isinstance(out["columns"][0], dict):
            out["columns"] = [{a: v for a, v in c.items() if a not in new}
                              for c in out["columns"]]
        return out

    old = {**now, "schemas": {n: SchemaEntry.of({k: v1(o) for k, o in e["objects"].items()})
                              .to_json() for n, e in now["schemas"].items()}}
    old.pop("catalog_version")
    read = Fingerprint.from_json(seal(old))     # as a file written then would be read now
    assert compare(read, Fingerprint.from_json(now)).outcome is Outcome.MATCH
    with connect(dsn) as conn:
        conn.execute("alter table core.orgs add column note text")
    assert compare(read, fp(dsn)).outcome is Outcome.MISMATCH


def test_a_sequence_behind_its_source_fails_a_content_compare(vcluster: Cluster) -> None:
    dsn = fresh_db(vcluster, "tmpl_data")
    ahead = fp(dsn, content=True)
    with connect(dsn) as conn:
        conn.execute("select setval('core.orgs_id_seq', 1)")
    cmp = compare(ahead, fp(dsn, content=True))
    bad = [t for t in cmp.tables if t.outcome is Outcome.MISMATCH]
    assert [t.name for t in bad] == ["sequence core.orgs_id_seq"] and "behind" in bad[0].detail
    assert compare(fp(dsn, content=True), ahead).outcome is Outcome.MATCH   # ahead is fine


def test_an_extension_version_is_part_of_the_schemas_fingerprint(vcluster: Cluster) -> None:
    """A physical restore keeps an extension's version (pg_dump does not: it restores the
    default version), and a copy on another version is not the same database."""
    dsn = fresh_db(vcluster)
    with connect(dsn) as conn:
        conn.execute("create extension citext version '1.4' schema core")
    before = fp(dsn)
    with connect(dsn) as conn:
        conn.execute("alter extension citext update to '1.5'")
    cmp = compare(before, fp(dsn))
    core = next(s for s in cmp.schemas if s.name == "core")
    assert core.outcome is Outcome.MISMATCH
    assert any("citext (extension): version" in d for d in core.differences), core.differences
    assert [s.name for s in cmp.schemas if s.outcome is Outcome.MISMATCH] == ["core"]


def test_one_large_table_is_hashed_by_tid_ranges_in_parallel_with_its_progress(
        vcluster: Cluster, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A table split into many TID ranges gives the same counts and checksum whether one
    session reads it whole or several share its ranges, and its progress reaches every block."""
    from spectral.verify import content
    from spectral.verify.fingerprint import Options, take

    dsn = fresh_db(vcluster)
    with connect(dsn) as conn:
        conn.execute("create table core.big (id bigint primary key, note text, at timestamptz)")
        conn.execute("insert into core.big select g, repeat(md5(g::text), 3), "
                     "'2026-01-01'::timestamptz + g * interval '1 minute' "
                     "from generate_series(1, 20000) g")
        conn.execute("delete from core.big where id % 7 = 0")   # holes in some blocks
        conn.execute("vacuum analyze core.big")
        blocks = conn.execute("select relpages from pg_class "
                              "where oid = 'core.big'::regclass").fetchone()[0]  # type: ignore[index]
    whole = take(dsn, Options(("core",), content=True, workers=1)).tables["core.big"]
    monkeypatch.setattr(content, "CHUNK_BLOCKS", 8)
    events: list[tuple[str, int, int]] = []
    doc = take(dsn, Options(("core",), content=True, workers=3,
                            progress=lambda s, d, t: events.append((s, d, t))))
    ranged = doc.tables["core.big"]
    assert blocks > 8 * 10
    assert ranged == whole and ranged.rows == 20000 - 20000 // 7
    mine = [e for e in events if e[0] == "scan core.big"]
    assert mine[0] == ("scan core.big", 0, blocks) and mine[-1] == ("scan core.big", blocks,
                                                                     blocks)
    assert [d for _, d, _ in mine] == sorted(d for _, d, _ in mine)   # never goes back
    overall = [e for e in events if e[0] == "scan"]
    assert overall[0][1] == 0 and overall[-1][1] == overall[-1][2]
    # small tables advance only the overall bar
    assert {e[0] for e in events} == {"scan", "scan core.big"}


def test_a_scan_that_fails_midway_stops_its_workers_and_reports_nothing(
        vcluster: Cluster, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An error (or Ctrl-C) while a large table is read stops every worker after its range:
    the scan does not read on for minutes, and no partial facts come out of it."""
    import pytest

    from spectral.verify import content
    from spectral.verify.fingerprint import Options, take

    dsn = fresh_db(vcluster)
    with connect(dsn) as conn:
        conn.execute("create table core.big (id bigint primary key, note text)")
        conn.execute("insert into core.big select g, repeat(md5(g::text), 3) "
                     "from generate_series(1, 20000) g")
        conn.execute("vacuum analyze core.big")
    monkeypatch.setattr(content, "CHUNK_BLOCKS", 2)
    read: list[int] = []

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "scan core.big" and done:
            read.append(done)
            if len(read) == 3:
                raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        take(dsn, Options(("core",), content=True, workers=2, progress=progress))
    with connect(dsn) as conn:
        blocks = conn.execute("select relpages from pg_class "
                              "where oid = 'core.big'::regclass").fetchone()[0]  # type: ignore[index]
    ranges = blocks // 2
    # the other worker stops after the range it is on (a few more at most, while the failing
    # one unwinds), far from reading all of them
    assert ranges > 50 and len(read) < ranges // 4
