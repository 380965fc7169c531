"""Issue 31, items 2 and 4: a drill compares the restore host's collation library versions
with the ones the source recorded in the snapshot (a mismatch warns and names the text indexes
that depend on the collation, or fails the drill with on_collation_mismatch = "fail"), and each
load-bearing table's count with the previous passing drill's (a drop beyond its bound warns
with both counts; the first drill has nothing to compare with)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from conftest import notes_environment, spectral
from spectral.config.base import OnFinding
from spectral.config.drift import DriftBound, parse_drift
from spectral.config.models import EnvironmentConfig
from spectral.drills.collations import DATABASE, mismatches
from spectral.drills.drift import NAME as DRIFT
from spectral.drills.drift import Baseline, drift_check
from spectral.drills.result import Check, DrillOutcome, DrillResult, DrillType
from spectral.ledger.payloads import DrillRecord
from spectral.verify.catalog import CATALOG_VERSION
from spectral.verify.collations import Collations, CollationVersion
from spectral.verify.document import Fingerprint, Source
from spectral.verify.fingerprint import load, save

COLLATIONS = "collation versions on the restore host"
TOML = ('[environments.staging]\nprovider = "local"\nposture = "pitr"\nschemas = ["core"]\n'
        'load_bearing_tables = ["core.notes"]\n')


# ---- the bounds and the checks, as pure logic ----------------------------------------------
def test_a_signed_bound_is_one_sided_and_a_bare_one_both_ways() -> None:
    drop, growth, both = parse_drift("-5%"), parse_drift("+5%"), parse_drift("5%")
    assert (drop, growth, both) == (DriftBound(5.0, "drop"), DriftBound(5.0, "growth"),
                                    DriftBound(5.0, "both"))
    assert drop.beyond(100, 94) and not drop.beyond(100, 95) and not drop.beyond(100, 1000)
    assert growth.beyond(100, 106) and not growth.beyond(100, 105) and not growth.beyond(100, 0)
    assert both.beyond(100, 94) and both.beyond(100, 106) and not both.beyond(100, 104)
    assert parse_drift("off") == DriftBound(None) and not parse_drift("off").beyond(100, 0)
    assert parse_drift(" -12.5 % ").beyond(1000, 874) and not drop.beyond(0, 0)
    assert both.beyond(0, 1) and not drop.beyond(0, 1)       # from nothing: growth only
    for bad in ("5", "-5", "five%", "--5%", "5%%", ""):
        with pytest.raises(ValueError, match="expected a bound such as '-5%'"):
            parse_drift(bad)


def test_the_drift_keys_are_checked_where_they_are_read() -> None:
    env = EnvironmentConfig(provider="local", load_bearing_tables=["core.users"],
                            drift={"core.users": "-5%"})
    assert (env.drift_default, env.on_drift, env.on_collation_mismatch) == \
        ("-10%", OnFinding.WARN, OnFinding.WARN)
    with pytest.raises(ValidationError, match="expected a bound such as"):
        EnvironmentConfig(provider="local", drift_default="ten percent")
    with pytest.raises(ValidationError, match=r"drift names core\.gone, not among"):
        EnvironmentConfig(provider="local", drift={"core.gone": "5%"})
    with pytest.raises(ValidationError):
        EnvironmentConfig(provider="local", on_drift="ignore")


def _baseline(counts: dict[str, int | None]) -> Baseline:
    return Baseline(datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
                    DrillRecord("functional", "pass", row_counts=counts))


def test_drift_names_the_table_and_both_counts_and_follows_on_drift() -> None:
    env = EnvironmentConfig(provider="local", load_bearing_tables=["core.a", "core.b", "core.c"],
                            drift={"core.b": "5%", "core.c": "off"})
    before = _baseline({"core.a": 1000, "core.b": 200, "core.c": 50})
    within = drift_check(env, {"core.a": 950, "core.b": 209, "core.c": 0}, before, "e")
    assert within.outcome is DrillOutcome.PASS, within
    assert within.detail == "3 table(s) within their bounds since the passing drill of " \
                            "2026-12-01 09:30 UTC"
    assert within.evidence[-1] == "against the passing drill of 2026-12-01 09:30 UTC"
    moved = drift_check(env, {"core.a": 100, "core.b": 211, "core.c": 50}, before, "e")
    assert moved.outcome is DrillOutcome.WARN
    assert moved.detail == ("core.a: 1000 -> 100 rows (-90.0%) beyond -10%; core.b: 200 -> 211 "
                            "rows (+5.5%) beyond 5% since the passing drill of 2026-12-01 09:30 "
                            "UTC: the source may have lost data")
    assert moved.evidence[:2] == [
        "core.a: 1000 -> 100 rows (-90.0%), beyond its bound -10% (a drop of more than 10%)",
        "core.b: 200 -> 211 rows (+5.5%), beyond its bound 5% (a change of more than 5% "
        "either way)"]
    failing = env.model_copy(update={"on_drift": OnFinding.FAIL})
    assert drift_check(failing, {"core.a": 100, "core.b": 200, "core.c": 50}, before,
                       "e").outcome is DrillOutcome.FAIL
    first = drift_check(env, {"core.a": 1}, None, "e")
    assert first.outcome is DrillOutcome.NOT_CONFIGURED
    assert "no earlier passing drill of e: nothing to compare with" in first.detail
    older = drift_check(env, {"core.a": 1}, _baseline({}), "e")
    assert "recorded no row counts (an older spectral): nothing to compare with" in older.detail
    unread = drift_check(env, {"core.a": None, "core.b": 1, "core.c": 1},
                         _baseline({"core.b": None}), "e")
    assert unread.outcome is DrillOutcome.NOT_CONFIGURED and "not compared" in unread.evidence[0]


def test_the_baseline_is_the_newest_passing_drill_of_the_environment_before_the_point() -> None:
    from spectral.drills.drift import baseline
    from spectral.ledger import Entry, EntryKind

    def entry(seq: int, env: str, outcome: str, snapshot: str | None,
              drift: str = "pass") -> Entry:
        data = {"type": "functional", "outcome": outcome, "row_counts": {"core.a": seq},
                "snapshot_taken_at": snapshot,
                "checks": [{"name": DRIFT, "outcome": drift, "detail": ""}]}
        return Entry(seq, datetime(2026, 12, seq, tzinfo=UTC), EntryKind.DRILL, env, data,
                     "0", "h")

    entries = [entry(1, "e", "pass", "2026-11-01T00:00:00.000+00:00"),
               entry(2, "e", "pass", None),                            # an older spectral's
               entry(3, "e", "pass", "2026-11-20T00:00:00.000+00:00"),
               entry(4, "e", "fail", "2026-11-21T00:00:00.000+00:00"),
               entry(5, "other", "pass", "2026-11-22T00:00:00.000+00:00")]
    newest = baseline(entries, "e", "2026-11-30T00:00:00.000+00:00")
    assert newest is not None and newest.drill.row_counts == {"core.a": 3}
    assert newest.line.endswith(", snapshot of 2026-11-20T00:00:00.000+00:00")
    older = baseline(entries, "e", "2026-11-10T00:00:00.000+00:00")     # --target-time
    assert older is not None and older.drill.row_counts == {"core.a": 2}
    assert baseline(entries, "e", "2026-10-01T00:00:00.000+00:00") is not None   # seq 2
    assert baseline(entries[2:], "e", "2026-10-01T00:00:00.000+00:00") is None
    assert baseline(entries, "nobody") is None
    # a drill that passed with its drift warning is no baseline: the drop is seen again
    warned = [*entries, entry(6, "e", "pass", "2026-11-25T00:00:00.000+00:00", drift="warn")]
    again = baseline(warned, "e", "2026-11-30T00:00:00.000+00:00")
    assert again is not None and again.drill.row_counts == {"core.a": 3}


def test_a_warning_keeps_the_drill_passing_and_exit_zero() -> None:
    result = DrillResult(DrillType.FUNCTIONAL, "e", "t", checks=[
        Check("a", DrillOutcome.PASS), Check(DRIFT, DrillOutcome.WARN, "core.a: 10 -> 1 rows")])
    assert result.outcome is DrillOutcome.PASS and result.outcome.exit_code == 0
    assert result.to_json()["warnings"] == [f"{DRIFT}: core.a: 10 -> 1 rows"]
    result.checks.append(Check("b", DrillOutcome.FAIL))
    assert result.outcome is DrillOutcome.FAIL


def test_a_collation_mismatch_needs_two_versions_that_differ() -> None:
    libc = CollationVersion("libc", "en_US.utf8", "2.36")
    recorded = Collations(libc, {'public."de-x-icu"': CollationVersion("icu", "de", "153.1"),
                                 'pg_catalog."C.utf8"': CollationVersion("libc", "C.utf8", None)})
    assert mismatches(recorded, {DATABASE: "2.36", 'public."de-x-icu"': "153.1"}) == []
    found = mismatches(recorded, {DATABASE: "2.41", 'public."de-x-icu"': "153.1",
                                  'pg_catalog."C.utf8"': "2.41"})
    assert [(m.name, m.actual) for m in found] == [(DATABASE, "2.41")]
    assert found[0].describe() == ("the database's collation en_US.utf8 (libc): the source "
                                   "recorded version 2.36, the restore host's library reports "
                                   "2.41")
    assert mismatches(recorded, {DATABASE: None}) == []        # the copy reports none


def test_a_snapshot_without_collations_still_loads_and_keeps_its_seal(tmp_path: Path) -> None:
    """A snapshot written before the field loads (the field is optional and left out of the
    sealed body when absent); one with it loads back whole, its seal over it."""
    old = Fingerprint("2026-12-01T09:30:00.000+00:00", Source("18.1", 180001, "0/1", "d"),
                      False, CATALOG_VERSION, {}, {}, {}).sealed()
    assert old.collations is None and "collations" not in old.to_json()
    save(old, tmp_path / "old.json")
    assert load(tmp_path / "old.json") == old
    new = replace(old, collations=Collations(CollationVersion("icu", "und", "153.1", "153.1"),
                                             {'public."de-x-icu"': CollationVersion(
                                                 "icu", "de", "153.1")})).sealed()
    assert new.to_json()["collations"]["database"]["provider"] == "icu" and new.seal != old.seal
    save(new, tmp_path / "new.json")
    assert load(tmp_path / "new.json") == new


# ---- drills on a real cluster ---------------------------------------------------------------
def _versioned_collation(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(
        "select format('%I.%I', n.nspname, c.collname) from pg_collation c "
        "join pg_namespace n on n.oid = c.collnamespace where c.collprovider in ('b', 'c', 'i') "
        "and pg_collation_actual_version(c.oid) is not null order by c.collprovider, 1 "
        "limit 1").fetchone()
    assert row is not None, "no versioned collation (builtin, libc or ICU) on this host"
    return str(row[0])


@pytest.mark.server
def test_collations_and_drift_across_three_drills(work_dir: Path) -> None:
    from spectral.config.load import load_config
    from spectral.drills.functional import run_functional
    from spectral.environment import open_environment
    from spectral.pg.conn import connect

    with notes_environment(work_dir) as environment:
        dsn = environment.provider.running_source()
        assert dsn is not None
        with connect(dsn) as conn:
            collation = _versioned_collation(conn)
            conn.execute("insert into core.notes select g, 'n' from generate_series(2, 100) g")
            conn.execute(f"create table core.names (id int primary key, name text "
                         f"collate {collation})")
            conn.execute("create index names_by_name on core.names (name)")
            # the source's catalog says its indexes were built by another library version
            conn.execute("update pg_collation set collversion = '0.fake' "
                         "where oid = %s::regcollation", (collation,))

        first = run_functional(environment)
        checks = {c.name: c for c in first.checks}
        assert first.outcome is DrillOutcome.PASS and first.outcome.exit_code == 0, first
        found = checks[COLLATIONS]
        assert found.outcome is DrillOutcome.WARN, found
        assert f"collation {collation}" in found.detail and "recorded version 0.fake" in \
            found.detail and "core.names_by_name" in found.detail
        assert f"index core.names_by_name on core.names (collation {collation})" in \
            found.evidence
        assert checks[DRIFT].outcome is DrillOutcome.NOT_CONFIGURED
        assert "nothing to compare with" in checks[DRIFT].detail
        assert first.row_counts == {"core.notes": 100}
        assert first.to_json()["warnings"] == [f"{COLLATIONS}: {found.detail}"]

        (work_dir / "spectral.toml").write_text(TOML + 'on_collation_mismatch = "fail"\n')
        strict = open_environment(load_config(None, cwd=work_dir), "staging")
        second = run_functional(strict)
        checks = {c.name: c for c in second.checks}
        assert second.outcome is DrillOutcome.FAIL and checks[COLLATIONS].outcome is \
            DrillOutcome.FAIL
        assert checks[DRIFT].outcome is DrillOutcome.PASS, checks[DRIFT]
        assert checks[DRIFT].evidence[0] == "core.notes: 100 -> 100 rows (+0.0%), within -10%"
        assert checks[DRIFT].evidence[1].startswith("against the passing drill of ")

        (work_dir / "spectral.toml").write_text(TOML)
        with connect(dsn) as conn:
            conn.execute("delete from core.notes where id > 10")     # 90% gone upstream
        text = spectral("dr", "drill", "functional", cwd=work_dir)
        assert text.returncode == 0, (text.stdout, text.stderr)
        assert "PASS" in text.stdout and "warn" in text.stdout
        # the report's drift section: both counts, the change and the bound
        assert "Row-count drift: WARN - core.notes: 100 -> 10 rows (-90.0%) beyond -10%" in \
            text.stdout, text.stdout
        assert ["core.notes", "100", "10", "-90.0%", "-10%", "WARN"] in \
            [line.split() for line in text.stdout.splitlines()], text.stdout
        assert "PASS with 2 warning(s)" in text.stdout   # the collation still differs
        log = json.loads(spectral("dr", "log", "--kind", "drill", "--json",
                                  cwd=work_dir).stdout)
        third = log[0]["data"]
        assert third["outcome"] == "pass" and third["row_counts"] == {"core.notes": 10}
        drift = next(c for c in third["checks"] if c["name"] == DRIFT)
        assert drift["outcome"] == "warn"
        # against the first drill: the second one failed, so it is no baseline
        assert drift["evidence"][0].startswith("core.notes: 100 -> 10 rows (-90.0%)")
        assert any(w.startswith(DRIFT) for w in third["warnings"])
        page = work_dir / "report.html"
        assert spectral("dr", "report", "--html", str(page), cwd=work_dir).returncode == 0
        html = page.read_text()
        assert 'class="warn">WARN' in html and "100 -&gt; 10 rows" in html
        assert ('<td>core.notes</td><td>100</td><td>10</td><td>-90.0%</td><td>-10%</td>'
                '<td class="warn">WARN</td>') in html


# what each release can version on any host: ICU in the system's 15, the builtin provider (17+)
# in the embedded 18, which is built without ICU
VERSIONED = {15: ("provider = icu, locale = 'und'",
                  "locale_provider icu icu_locale 'und' locale 'C'"),
             18: ("provider = builtin, locale = 'C.UTF-8'",
                  "locale_provider builtin builtin_locale 'C.UTF-8'")}


@pytest.mark.parametrize("release", sorted(VERSIONED))
def test_the_collation_queries_on_15_and_18(release: int, make_cluster: Any, bins: Any,
                                            request: pytest.FixtureRequest) -> None:
    """The snapshot's and the copy's queries on both releases (their locale columns differ),
    a collation an index's key or its predicate uses, and the database's own collation: each
    recorded as another version than the library's is found with the indexes on it."""
    from spectral.drills.collations import collation_check
    from spectral.pg.conn import connect, with_dbname
    from spectral.verify.collations import read_collations
    from spectral.verify.reader import ConnRows

    cluster = make_cluster(request.getfixturevalue("pg15") if release == 15 else bins)
    collation, (made, provider) = "public.sorted", VERSIONED[release]
    with cluster.connect() as conn:
        conn.execute(f"create database versioned template template0 {provider}")
        conn.execute("update pg_database set datcollversion = '0.fake' "
                     "where datname = 'versioned'")
    env = EnvironmentConfig(provider="local")
    with connect(with_dbname(cluster.conninfo(), "versioned")) as conn:
        conn.execute(f"create collation {collation} ({made})")
        conn.execute(f"create table public.names (id int, name text, tag text collate "
                     f"{collation})")
        conn.execute("create index by_name on public.names (name)")
        conn.execute(f"create index short_ids on public.names (id) where name < 'm' collate "
                     f"{collation}")
        conn.execute("create index by_id on public.names (id)")
        conn.execute("create index short_names on public.names (id) where name < 'm'")
        conn.execute("update pg_collation set collversion = '0.fake' where oid = %s::regcollation",
                     (collation,))
        recorded = read_collations(conn)
        assert recorded is not None and recorded.database.version == "0.fake"
        assert recorded.database.provider == ("icu" if release == 15 else "builtin")
        assert recorded.database.actual not in (None, "0.fake")
        assert set(recorded.in_use) == {collation}, recorded     # the C of the catalogs apart
        check = collation_check(env, recorded, ConnRows(conn))
        assert check.outcome is DrillOutcome.WARN, check
        assert check.evidence[2:] == [
            "index public.by_name on public.names (collation default)",
            f"index public.short_ids on public.names (collation {collation})",
            # a predicate's comparison under the database's collation: no pg_depend row
            "index public.short_names on public.names (collation default)"]
        assert "the database's collation" in check.evidence[0] and \
            f"collation {collation}" in check.evidence[1]
        failing = env.model_copy(update={"on_collation_mismatch": OnFinding.FAIL})
        assert collation_check(failing, recorded, ConnRows(conn)).outcome is DrillOutcome.FAIL
        conn.execute(f"alter collation {collation} refresh version")
        conn.execute("alter database versioned refresh collation version")
        again = read_collations(conn)
        assert again is not None
        assert collation_check(env, again, ConnRows(conn)).outcome is DrillOutcome.PASS
