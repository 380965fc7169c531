"""Partner rule corpora on real clusters: exact export, round trip, validation, the re-export
hook through a burst of mutations and a database restart."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from conftest import ClusterFactory, _processes_under, spectral
from spectral.errors import CheckFailed, RefusedError, UsageError
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect, with_dbname
from spectral.refdb.author import author, partner_corpus
from spectral.refdb.migrate import migrate
from spectral.refdb.seed import seed
from spectral.rules import hook
from spectral.rules.export import export
from spectral.rules.importer import load, read_folder
from spectral.rules.layout import rule_path
from spectral.rules.watch import watch
from spectral.verify.compare import Outcome, compare
from spectral.verify.fingerprint import Options, take

RULE_TABLES = ["platform.corpora", "platform.rules", "platform.rule_versions",
               "platform.rule_references"]


def reference_db(c: Cluster, name: str) -> str:
    with c.connect() as conn:
        conn.execute(f"create database {name}")
    dsn = with_dbname(c.conninfo(), name)
    with connect(dsn) as conn:
        migrate(conn)
    seed(dsn, 1)
    with connect(dsn) as conn:
        author(conn, rules_per_corpus=50)
    return dsn


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def source(make_cluster: ClusterFactory) -> tuple[Cluster, str]:
    c = make_cluster()
    dsn = reference_db(c, "src")
    with connect(dsn) as conn:
        partner_corpus(conn, "acme-tax", rules=300)
        partner_corpus(conn, "northwind-cpa", rules=40)
    return c, dsn


def test_round_trip_is_byte_identical_and_checksums_match(source: tuple[Cluster, str],
                                                          work_dir: Path) -> None:
    c, dsn = source
    out1, out2 = work_dir / "one", work_dir / "two"
    with connect(dsn) as conn:
        results = export(conn, ["acme-tax"], out1)
    assert results[0].rules == 300 and results[0].readme_created
    manifest = json.loads((out1 / "acme-tax" / "manifest.json").read_text())
    assert manifest["counts"] == {"corpora": 1, "rules": 300}
    assert len(manifest["files"]) == 301
    target = reference_db(c, "dst")
    with connect(target) as conn:
        assert load(conn, read_folder(out1, "acme-tax"), replace=False)["rules"] == 300
        export(conn, ["acme-tax"], out2)
    a, b = tree(out1 / "acme-tax"), tree(out2 / "acme-tax")
    assert a == b
    with connect(dsn) as conn:   # the other partner is not part of either database's export
        conn.execute("delete from platform.corpora where slug = 'northwind-cpa-rules'")
    fa = take(dsn, Options(("platform",), content=True))
    fb = take(target, Options(("platform",), content=True))
    cmp = compare(fa, fb, tables=RULE_TABLES, content=True)
    assert [t.outcome for t in cmp.tables] == [Outcome.MATCH] * 4, cmp.to_json()["tables"]


def test_unchanged_export_writes_nothing_and_one_change_one_file(
        source: tuple[Cluster, str], work_dir: Path) -> None:
    _c, dsn = source
    out = work_dir / "rules"
    with connect(dsn) as conn:
        export(conn, ["acme-tax"], out)
        readme = out / "acme-tax" / "README.md"
        readme.write_text(readme.read_text() + "\nEdited by the partner team.\n")
        again = export(conn, ["acme-tax"], out)[0]
        assert again.written == [] and again.removed == [] and not again.readme_created
        assert readme.read_text().endswith("Edited by the partner team.\n")
        conn.execute("update platform.rules set priority = 7 "
                     "where rule_key = 'acme-tax-rules.r000005'")
        changed = export(conn, ["acme-tax"], out)[0]
    assert sorted(changed.written) == sorted(
        ["manifest.json", rule_path("acme-tax-rules", "acme-tax-rules.r000005")])


def test_bad_imports_are_refused(source: tuple[Cluster, str], work_dir: Path) -> None:
    c, dsn = source
    out = work_dir / "rules"
    with connect(dsn) as conn:
        export(conn, ["acme-tax"], out)
    folder = out / "acme-tax"
    victim = folder / rule_path("acme-tax-rules", "acme-tax-rules.r000003")
    original = victim.read_bytes()
    victim.write_text(victim.read_text().replace('"priority": 103', '"priority": 999'))
    with pytest.raises(CheckFailed, match=r"r000003\.json: its checksum does not match"):
        read_folder(out, "acme-tax")
    victim.unlink()
    with pytest.raises(CheckFailed, match=r"r000003\.json: listed in the manifest but missing"):
        read_folder(out, "acme-tax")
    victim.write_bytes(original)

    def rewrite(rel: str, edit: str, to: str) -> None:   # an edit with a matching manifest
        import hashlib

        path = folder / rel
        path.write_text(path.read_text().replace(edit, to))
        m = json.loads((folder / "manifest.json").read_text())
        m["files"][rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        m["corpus_sha256"] = hashlib.sha256("".join(      # a wholly consistent manifest
            f"{h}  {r}\n" for r, h in sorted(m["files"].items())).encode()).hexdigest()
        (folder / "manifest.json").write_text(json.dumps(m))

    doc = json.loads(victim.read_text())
    rel4 = rule_path("acme-tax-rules", "acme-tax-rules.r000004")
    rewrite(rel4, f'"id": {json.loads((folder / rel4).read_text())["rule"]["id"]}',
            f'"id": {doc["rule"]["id"]}')
    with pytest.raises(CheckFailed, match="duplicate rule id"):
        read_folder(out, "acme-tax")
    with connect(dsn) as conn:
        export(conn, ["acme-tax"], out)   # back to a clean export
    rel10 = rule_path("acme-tax-rules", "acme-tax-rules.r000010")
    rewrite(rel10, '"rule_key": "acme-tax-rules.r000009"', '"rule_key": "acme-tax-rules.nope"')
    with pytest.raises(CheckFailed, match=r"references acme-tax-rules/acme-tax-rules\.nope"):
        read_folder(out, "acme-tax")
    with connect(dsn) as conn:
        export(conn, ["acme-tax"], out)
        with pytest.raises(RefusedError, match="already has a corpus"):
            load(conn, read_folder(out, "acme-tax"), replace=False)
        assert load(conn, read_folder(out, "acme-tax"), replace=True)["rules"] == 300
        with pytest.raises(UsageError, match="unknown partner"):
            export(conn, ["no-such-partner"], out)
    with pytest.raises(UsageError, match="could escape"):
        read_folder(out, "../x")
    del c


def test_burst_of_mutations_with_a_restart_ends_with_files_equal_to_the_database(
        source: tuple[Cluster, str], work_dir: Path) -> None:
    c, dsn = source
    out, check = work_dir / "watched", work_dir / "check"
    with connect(dsn) as conn:
        hook.install(conn)
        assert hook.status(conn)["installed"]
    stop = threading.Event()
    messages: list[str] = []
    worker = threading.Thread(target=watch, args=(dsn, out), kwargs={
        "debounce": 0.3, "report": messages.append, "should_stop": stop.is_set})
    worker.start()
    try:
        time.sleep(1.0)

        def mutate(start: int, n: int) -> None:
            with connect(dsn) as conn:
                for i in range(start, start + n):
                    key = f"acme-tax-rules.r{(i % 300) + 1:06d}"
                    if i % 50 == 0:
                        conn.execute("delete from platform.rules where rule_key = %s", (key,))
                    else:
                        conn.execute("update platform.rules set priority = %s, "
                                     "body = body || jsonb_build_object('n', %s::int) "
                                     "where rule_key = %s", (i % 1000, i, key))
                    if i % 97 == 0:
                        conn.execute("update platform.rules set title = title || '!' "
                                     "where rule_key like 'northwind-cpa-rules.%%' "
                                     "and right(rule_key, 1) = '1'")

        mutate(0, 500)
        c.stop()                         # the database goes away mid-burst
        time.sleep(0.5)
        c.start()
        mutate(500, 500)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:   # until the files equal a fresh export
            with connect(dsn) as conn:
                export(conn, None, check)
            if all(tree(out / p) == tree(check / p) for p in ("acme-tax", "northwind-cpa")
                   if (out / p).exists()) and (out / "acme-tax").exists():
                break
            time.sleep(0.5)
    finally:
        stop.set()
        worker.join(timeout=30)
    for partner in ("acme-tax", "northwind-cpa"):
        assert tree(out / partner) == tree(check / partner), partner
    assert any("reconnected" in m for m in messages), messages


@pytest.mark.server
def test_export_rules_cli(work_dir: Path) -> None:
    assert spectral("demo", cwd=work_dir).returncode == 0
    res = spectral("db", "export-rules", "--partner", "../x", cwd=work_dir)
    assert res.returncode == 2 and "could escape" in res.stderr
    res = spectral("db", "export-rules", "--partner", "acme-tax", "--json", cwd=work_dir)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)[0]["rules"] == 0       # no partner corpus yet: empty export
    assert (work_dir / "data" / "rules" / "acme-tax" / "README.md").exists()
    res = spectral("db", "rules-hook", "status", cwd=work_dir)
    assert res.returncode == 1
    assert spectral("db", "rules-hook", "install", cwd=work_dir).returncode == 0
    assert spectral("db", "rules-hook", "status", cwd=work_dir).returncode == 0
    res = spectral("db", "watch-rules", "--seconds", "1", cwd=work_dir)
    assert res.returncode == 0, res.stderr
    assert spectral("db", "rules-hook", "uninstall", cwd=work_dir).returncode == 0
    spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []
