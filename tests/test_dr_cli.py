"""`spectral dr fingerprint | compare | snapshot | snapshots` as a user runs them."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import _processes_under, spectral
from spectral.pg.cluster import free_port
from spectral.pg.conn import connect


@pytest.fixture(scope="module")
def seeded(base_dir: Path) -> Iterator[tuple[Path, str]]:
    """A working directory whose local environment is seeded and running for the module."""
    # a folder of its own each time: with --dist worksteal a worker can set this module up
    # twice (its tests split around another module's), and a fixed name then existed already
    work = Path(tempfile.mkdtemp(prefix="dr-cli-", dir=base_dir))
    work.chmod(0o755)
    assert spectral("demo", cwd=work).returncode == 0
    assert spectral("local", "up", cwd=work).returncode == 0
    dsn = json.loads(spectral("local", "status", "--json", cwd=work).stdout)["dsn"]
    try:
        yield work, dsn
    finally:
        spectral("local", "down", cwd=work)
        assert _processes_under(work) == []


def test_compare_with_own_fingerprint_exits_0_and_a_change_exits_1(
        seeded: tuple[Path, str]) -> None:
    work, dsn = seeded
    out = work / "fp.json"
    res = spectral("dr", "fingerprint", "--content", "--out", str(out), cwd=work)
    assert res.returncode == 0, res.stderr
    assert "worlds.line_items" in res.stdout
    res = spectral("dr", "compare", str(out), "local", cwd=work)
    assert res.returncode == 0, res.stdout + res.stderr
    with connect(dsn) as conn:
        conn.execute("alter table worlds.returns alter column status set default 'filed'")
    try:
        res = spectral("dr", "compare", str(out), "local", "--json", cwd=work)
        assert res.returncode == 1
        doc = json.loads(res.stdout)
        worlds = next(s for s in doc["schemas"] if s["schema"] == "worlds")
        assert any("worlds.returns.status: default 'draft'" in d for d in worlds["differences"])
        res = spectral("dr", "compare", str(out), dsn, cwd=work)   # a DSN works as well
        assert res.returncode == 1 and "worlds.returns.status" in res.stdout
    finally:
        with connect(dsn) as conn:
            conn.execute("alter table worlds.returns alter column status set default 'draft'")


def test_fingerprint_json_carries_counts_and_source(seeded: tuple[Path, str]) -> None:
    work, _dsn = seeded
    res = spectral("dr", "fingerprint", "--json", cwd=work)
    doc = json.loads(res.stdout)
    assert doc["tables"]["worlds.returns"]["rows"] == 4000
    assert doc["source"]["server_version"].startswith("18")
    assert set(doc["schemas"]) == {"core", "worlds", "platform"}


def test_snapshots_are_stored_and_listed(seeded: tuple[Path, str]) -> None:
    work, _dsn = seeded
    res = spectral("dr", "snapshot", "--json", cwd=work)
    assert res.returncode == 0, res.stderr
    path = Path(json.loads(res.stdout)["path"])
    assert path.exists() and path.parent.name == "snapshots"
    listed = json.loads(spectral("dr", "snapshots", "--json", cwd=work).stdout)
    assert str(path) in [s["path"] for s in listed]


def test_bad_fingerprint_files(seeded: tuple[Path, str]) -> None:
    work, _dsn = seeded
    good = work / "good.json"
    assert spectral("dr", "fingerprint", "--out", str(good), cwd=work).returncode == 0
    doc = json.loads(good.read_text())
    other = work / "v9.json"
    other.write_text(json.dumps({**doc, "version": 9}))
    res = spectral("dr", "compare", str(other), str(good), cwd=work)
    assert res.returncode == 2 and "version 9 is not supported" in res.stderr
    edited = work / "edited.json"
    doc["tables"]["worlds.returns"]["rows"] = 1
    edited.write_text(json.dumps(doc))
    res = spectral("dr", "compare", str(edited), str(good), cwd=work)
    assert res.returncode == 3 and "seal does not match" in res.stderr
    broken = work / "broken.json"
    broken.write_text(good.read_text()[:100])
    res = spectral("dr", "compare", str(broken), str(good), cwd=work)
    assert res.returncode == 3 and "corrupted fingerprint" in res.stderr
    res = spectral("dr", "compare", str(work / "absent.json"), str(good), cwd=work)
    assert res.returncode == 2 and "no such fingerprint file" in res.stderr
    res = spectral("dr", "compare", "nonsense", str(good), cwd=work)
    assert res.returncode == 2 and "neither a fingerprint file" in res.stderr


def test_unreachable_dsn_and_missing_schema(seeded: tuple[Path, str]) -> None:
    work, _dsn = seeded
    dsn = f"postgresql://x:pw-should-not-show@127.0.0.1:{free_port()}/db?connect_timeout=2"
    res = spectral("dr", "compare", dsn, "local", cwd=work)
    assert res.returncode == 2 and "cannot connect" in res.stderr
    assert "pw-should-not-show" not in res.stderr + res.stdout
    res = spectral("dr", "fingerprint", "--schemas", "core,nope", cwd=work)
    assert res.returncode == 3 and "schema nope does not exist" in res.stderr


@pytest.mark.server
def test_backup_restore_instances_teardown_cli(work_dir: Path) -> None:
    res = spectral("dr", "backups", cwd=work_dir)
    assert res.returncode == 0 and "no backups yet" in res.stdout
    assert spectral("demo", cwd=work_dir).returncode == 0    # seeds, backs up once, drills
    res = spectral("dr", "backup", "--json", cwd=work_dir)
    assert res.returncode == 0, res.stderr
    backup = json.loads(res.stdout)
    assert backup["verification"] == "verified" and backup["kind"] == "full"
    listing = json.loads(spectral("dr", "backups", "--json", cwd=work_dir).stdout)
    assert [b["id"] for b in listing["backups"]][-1] == backup["id"]
    assert listing["window"]["earliest_lsn"] == listing["backups"][0]["stop_lsn"]
    res = spectral("dr", "restore", "--latest", "--target-xid", "5", cwd=work_dir)
    assert res.returncode == 2 and "exactly one of" in res.stderr
    res = spectral("dr", "restore", "--target-time", "2001-01-01T00:00:00Z", cwd=work_dir)
    assert res.returncode == 2 and "outside the recoverable window" in res.stderr
    res = spectral("dr", "restore", "--latest", "--in-place", cwd=work_dir)
    assert res.returncode == 2 and "needs --yes" in res.stderr
    res = spectral("dr", "restore", "--latest", "--json", cwd=work_dir)
    assert res.returncode == 0, res.stderr
    inst = json.loads(res.stdout)
    with connect(inst["dsn"]) as conn:
        assert conn.execute("select count(*) from worlds.returns").fetchone() == (4000,)
    listed = json.loads(spectral("dr", "instances", "--json", cwd=work_dir).stdout)
    assert [i["id"] for i in listed] == [inst["id"]] and listed[0]["running"] is True
    res = spectral("dr", "teardown", inst["id"], cwd=work_dir)
    assert res.returncode == 0 and inst["id"] in res.stdout
    assert json.loads(spectral("dr", "instances", "--json", cwd=work_dir).stdout) == []
    # a copy that would not fit (the catalog says each backup is a petabyte): refused before
    # anything is written, never a full disk under the source
    catalog = next(work_dir.rglob("catalog.json"))
    kept = catalog.read_text()
    doc = json.loads(kept)
    for b in doc["backups"]:
        b["size_bytes"] = 1 << 50
    catalog.write_text(json.dumps(doc))
    res = spectral("dr", "restore", "--latest", cwd=work_dir)
    assert res.returncode == 3 and "the restored copy needs about 104857" in res.stderr, \
        res.stderr
    assert json.loads(spectral("dr", "instances", "--json", cwd=work_dir).stdout) == []
    res = spectral("dr", "restore", "--latest", "--in-place", "--yes", cwd=work_dir)
    assert res.returncode == 3 and "the in-place restore (the current data is kept aside " \
        "beside it) needs about" in res.stderr, res.stderr
    assert not list(work_dir.rglob("data.previous-*"))         # nothing was moved aside
    catalog.write_text(kept)
    # an older backup than the newest, named (the newest damaged: an attached team's stays
    # planned until the team acts)
    older = listing["backups"][0]["id"]
    res = spectral("dr", "restore", "--latest", "--backup", older, "--json", cwd=work_dir)
    assert res.returncode == 0, res.stderr
    inst = json.loads(res.stdout)
    assert inst["backup_id"] == older and older != backup["id"]
    assert spectral("dr", "teardown", inst["id"], cwd=work_dir).returncode == 0
    res = spectral("dr", "restore", "--latest", "--backup", "../nosuch", cwd=work_dir)
    assert res.returncode == 2 and "is not a usable backup" in res.stderr, res.stderr
    res = spectral("dr", "restore", "--latest", "--backup", older, "--in-place", cwd=work_dir)
    assert res.returncode == 2 and "not --in-place" in res.stderr, res.stderr
    res = spectral("dr", "teardown", "nope", cwd=work_dir)
    assert res.returncode == 2
    res = spectral("dr", "restore", "--latest", "--in-place", "--yes", cwd=work_dir)
    assert res.returncode == 0, res.stderr
    res = spectral("dr", "restore", "--undo", cwd=work_dir)
    assert res.returncode == 2 and "nothing was changed" in res.stderr     # asks first
    res = spectral("dr", "restore", "--undo", "--yes", cwd=work_dir)
    assert res.returncode == 0, res.stderr
    assert "put back" in res.stdout and "which later restores follow" in res.stdout
    res = spectral("dr", "restore", "--discard-previous", cwd=work_dir)
    assert res.returncode == 2 and "nothing was changed" in res.stderr
    res = spectral("dr", "restore", "--discard-previous", "--yes", cwd=work_dir)
    assert res.returncode == 0 and "discarded 1 kept-aside" in res.stdout, res.stderr
    assert _processes_under(work_dir) == []
