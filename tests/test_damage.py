"""find-damage and salvage while a write workload runs: the DELETE is found with its xid, the
deleted rows come back, later writes stay, rows deleted later on purpose stay deleted."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from conftest import _processes_under, spectral
from spectral.pg.conn import connect


def _workload(dsn: str, stop: threading.Event) -> None:
    with connect(dsn) as conn:
        n = 0
        while not stop.is_set():
            n += 1
            conn.execute("insert into core.audit_events (action, entity, entity_id) "
                         "values ('load', 'test', %s)", (str(n),))
            conn.execute("update worlds.returns set withheld = withheld + 1 "
                         "where id = %s", (2000 + n % 100,))


def _check_salvaged_and_later_writes_kept(dsn: str) -> None:
    with connect(dsn) as conn:
        assert conn.execute("select count(*) from worlds.returns where id between 101 "
                            "and 140").fetchone() == (40,)
        assert conn.execute("select count(*) from worlds.returns where id = 500"
                            ).fetchone() == (0,)
        assert conn.execute("select status from worlds.returns where id = 700"
                            ).fetchone() == ("filed",)
        assert conn.execute("select count(*) from worlds.returns where tax_year = 2025 "
                            "and taxpayer_id = 1").fetchone() == (1,)
        assert conn.execute("select count(*) from core.audit_events where action = 'load'"
                            ).fetchone()[0] > 0  # type: ignore[index]


@pytest.mark.server
def test_find_and_salvage_a_delete_under_load(work_dir: Path) -> None:
    assert spectral("demo", cwd=work_dir).returncode == 0
    assert spectral("local", "up", cwd=work_dir).returncode == 0
    stop = threading.Event()
    try:
        dsn = json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)["dsn"]

        worker = threading.Thread(target=_workload, args=(dsn, stop))
        worker.start()
        with connect(dsn, autocommit=False) as conn:
            conn.execute("delete from worlds.returns where id between 101 and 140")
            bad_xid = conn.execute("select txid_current()").fetchone()[0]  # type: ignore[index]
            conn.commit()
        with connect(dsn) as conn:   # later writes that must survive the salvage
            conn.execute("delete from worlds.returns where id = 500")          # on purpose
            conn.execute("update worlds.returns set status = 'filed', "
                         "filed_at = now() where id = 700")
            conn.execute("insert into worlds.returns (taxpayer_id, tax_year) "
                         "values (1, 2025)")
        res = spectral("dr", "find-damage", "--table", "worlds.returns", "--op", "delete",
                       "--json", cwd=work_dir)
        assert res.returncode == 0, res.stderr
        found = json.loads(res.stdout)
        mine = [d for d in found if d["xid"] == bad_xid]
        assert mine and mine[0]["rows"] == 40
        assert mine[0]["target"] == f"--target-xid {bad_xid} --exclusive"
        assert any(d["rows"] == 1 for d in found if d["xid"] != bad_xid)   # the later one
        res = spectral("dr", "salvage", "--table", "worlds.returns", "--before-xid",
                       str(bad_xid), "--dry-run", "--json", cwd=work_dir)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["restored"] == 40
        res = spectral("dr", "salvage", "--table", "worlds.returns", "--before-xid",
                       str(bad_xid), "--yes", "--json", cwd=work_dir)
        assert res.returncode == 0, res.stderr
        stop.set()
        worker.join(timeout=30)
        _check_salvaged_and_later_writes_kept(dsn)
        assert json.loads(spectral("dr", "instances", "--json", cwd=work_dir).stdout) == []
        log = json.loads(spectral("dr", "log", "--kind", "incident", "--json",
                                  cwd=work_dir).stdout)
        assert "salvaged 40 row(s)" in log[0]["data"]["summary"]
        res = spectral("dr", "salvage", "--table", "worlds.returns; drop", "--before-xid", "1",
                       cwd=work_dir)
        assert res.returncode == 2
    finally:
        stop.set()
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []
