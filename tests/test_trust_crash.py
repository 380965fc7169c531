"""Issue 27, defects 5, 11 and 12: kill -9 of the real `spectral` process in the middle of an
in-place restore, its undo, an expiry and a salvage. The next command finds what the killed one
left and puts it right: the live database holds exactly the rows it held before (or the restored
ones, when the restore had committed), `local up` works, `--undo` works when one is due, and
nothing is left that no command lists.

Kills at every step boundary use the test-only hook SPECTRAL_TEST_CRASH_AT=<step> (the process
sends itself SIGKILL there); the others kill by pid at a moment seen from outside."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import SPECTRAL, _processes_under, spectral

# the steps and which of them finish the operation (once a server ran on the put-back data
# an undo is finished): one list, shared with the lifecycle's crash rules
from lifecycle_crashes import RESTORE_COMMITTED, RESTORE_STEPS, UNDO_FINISHED, UNDO_STEPS
from spectral.pg.conn import connect
from test_pgbackrest import Env as PgbEnv
from test_pgbackrest import commit as pgb_commit
from test_pgbackrest import pgb  # noqa: F401  (the fixture)


class Env:
    """A local environment "staging" driven through the real command line."""

    def __init__(self, work_dir: Path) -> None:
        self.dir = work_dir
        self.cluster_dir = work_dir / ".spectral" / "staging" / "cluster"
        self.instances_dir = work_dir / ".spectral" / "staging" / "instances"
        self.base_dir = work_dir / ".spectral" / "staging" / "backups" / "base"

    def run(self, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
        return spectral(*args, cwd=self.dir,
                        env={"SPECTRAL_TEST_CRASH_AT": crash_at} if crash_at else None)

    def ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        res = self.run(*args)
        assert res.returncode == 0, (args, res.stdout, res.stderr)
        return res

    def killed(self, *args: str, step: str) -> None:
        res = self.run(*args, crash_at=step)
        assert res.returncode == -signal.SIGKILL, (step, res.returncode, res.stdout, res.stderr)

    @property
    def dsn(self) -> str:
        return str(json.loads(self.ok("local", "status", "--json").stdout)["dsn"])

    def sql(self, query: str) -> list[tuple[object, ...]]:
        with connect(self.dsn) as conn:
            cur = conn.execute(query)
            return cur.fetchall() if cur.description else []

    def rows(self) -> list[int]:
        return [int(r[0]) for r in self.sql("select id from t order by id")]  # type: ignore[call-overload]

    def commit(self, query: str) -> int:
        with connect(self.dsn, autocommit=False) as conn:
            conn.execute(query)
            row = conn.execute("select txid_current()").fetchone()
            conn.commit()
        assert row is not None
        return int(row[0])


@pytest.fixture
def env(work_dir: Path) -> Iterator[Env]:
    with staging(work_dir) as e:
        yield e


@contextlib.contextmanager
def staging(work_dir: Path) -> Iterator[Env]:
    """Environment "staging": running, table public.t with ten rows, one backup; its instances
    torn down and its server stopped afterwards."""
    (work_dir / "spectral.toml").write_text(
        '[environments.staging]\nprovider = "local"\nposture = "pitr"\n'
        'schemas = ["public"]\nload_bearing_tables = ["public.t"]\n')
    e = Env(work_dir)
    e.ok("local", "up")
    try:
        e.sql("create table t (id int primary key, note text)")
        e.sql("insert into t select g, 'base' from generate_series(1, 10) g")
        e.ok("dr", "backup")
        yield e
    finally:
        spectral("dr", "teardown", "--all", cwd=work_dir)
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


def _restore(e: Env, xid: int, step: str | None = None) -> None:
    args = _restore_args(xid)
    if step is None:
        e.ok(*args)
    else:
        e.killed(*args, step=step)


# ---- 5: in-place restore and undo, killed at every step ------------------------------------
@pytest.mark.slow
def test_in_place_restore_killed_at_every_step(env: Env) -> None:
    """Before its record is written the restore is rolled back (the rows of before); after, it
    is finished (the restored rows) and its undo is due. The next command alternates: a bare
    `local up`, or the natural next step (another in-place restore; `--undo` once committed)."""
    target_xid = env.commit("insert into t values (11, 'target')")
    target = env.rows()
    for n, step in enumerate(RESTORE_STEPS):
        env.commit(f"insert into t values ({100 + n}, 'after')")
        before = env.rows()
        _restore(env, target_xid, step)
        committed = step in RESTORE_COMMITTED
        if n % 2 == 0:
            res = env.ok("local", "up")
            assert committed or "rolled back" in res.stderr, (step, res.stderr)
            assert env.rows() == (target if committed else before), step
            undo = env.run("dr", "restore", "--undo", "--yes")
            if committed:
                assert undo.returncode == 0, (step, undo.stderr)
            else:
                assert undo.returncode == 2 and "no in-place restore" in undo.stderr, step
        elif committed:
            res = env.ok("dr", "restore", "--undo", "--yes")
            assert "finished" in res.stderr, (step, res.stderr)
        else:
            res = env.ok(*_restore_args(target_xid))
            assert "rolled back" in res.stderr, (step, res.stderr)
            assert env.rows() == target, step
            env.ok("dr", "restore", "--undo", "--yes")
        assert env.rows() == before, step
        assert not (env.cluster_dir / "intent.json").exists(), step
    entries = [json.loads(line) for line in
               (env.dir / ".spectral" / "staging" / "evidence" / "ledger.jsonl")
               .read_text().splitlines()]
    finished = [e for e in entries if "finished after its process was killed" in
                str(e.get("data", {}).get("summary"))]
    assert len(finished) == 2, finished   # committed, discarded (recorded had its entry)


def _restore_args(xid: int) -> tuple[str, ...]:
    return ("dr", "restore", "--in-place", "--yes", "--target-xid", str(xid))


@pytest.mark.slow
def test_undo_killed_at_every_step(env: Env) -> None:
    target_xid = env.commit("insert into t values (11, 'target')")
    target = env.rows()
    for n, step in enumerate(UNDO_STEPS):
        env.commit(f"insert into t values ({100 + n}, 'after')")
        before = env.rows()
        _restore(env, target_xid)
        assert env.rows() == target
        env.killed("dr", "restore", "--undo", "--yes", step=step)
        nxt = ("local", "up") if n % 2 == 0 else ("dr", "backup")
        res = env.ok(*nxt)
        if step in UNDO_FINISHED:
            assert "finished" in res.stderr, (step, res.stderr)
            assert env.rows() == before, step
            refused = env.run("dr", "restore", "--undo", "--yes")
            assert refused.returncode == 2 and "no in-place restore to undo" in refused.stderr
        else:
            assert "rolled back" in res.stderr, (step, res.stderr)
            assert env.rows() == target, step
            env.ok("dr", "restore", "--undo", "--yes")   # the undo is still due, and works
            assert env.rows() == before, step
        assert not (env.cluster_dir / "intent.json").exists(), step
    assert env.ok("local", "up").returncode == 0


def test_in_place_restore_killed_by_pid_after_the_data_moved_aside(env: Env) -> None:
    """Seen from outside: the data directory has moved aside; kill -9 by pid. The next
    `local up` works and holds the rows of before; another in-place restore and its undo
    then behave (the intact copy is never deleted as an "older kept-aside copy")."""
    target_xid = env.commit("insert into t values (11, 'target')")
    target = env.rows()
    env.commit("insert into t select g, 'after' from generate_series(100, 150) g")
    before = env.rows()
    proc = subprocess.Popen([SPECTRAL, "dr", "restore", "--in-place", "--yes", "--target-xid",
                             str(target_xid)], cwd=env.dir, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env={k: v for k, v in os.environ.items()
                                 if not k.startswith("SPECTRAL_TEST")})
    deadline = time.monotonic() + 60
    while not list(env.cluster_dir.glob("data.previous-*")) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    env.ok("local", "up")
    assert env.rows() == before
    _restore(env, target_xid)
    assert env.rows() == target
    env.ok("dr", "restore", "--undo", "--yes")
    assert env.rows() == before


# ---- 11: expire killed after it rewrote the catalog ----------------------------------------
def _listed(env: Env) -> set[str]:
    catalog = json.loads((env.base_dir.parent / "catalog.json").read_text())
    return {b["id"] for b in catalog["backups"]}


def _dirs(env: Env) -> set[str]:
    return {p.name for p in env.base_dir.iterdir()}


def test_expire_killed_after_the_catalog_is_finished_by_the_next_expire_or_backup(
        env: Env) -> None:
    for _ in range(2):
        env.ok("dr", "backup")
    env.killed("dr", "expire", "--keep", "1", "--yes", step="expire:catalog-written")
    assert len(_listed(env)) == 1 and len(_dirs(env)) == 3     # two left unlisted
    res = env.ok("dr", "expire", "--keep", "1", "--yes")
    assert "removed 2 backup director(ies) the catalog no longer listed" in res.stdout, res.stdout
    assert _dirs(env) == _listed(env)
    # the same state, left by hand as a kill leaves it, is swept by the next backup
    env.ok("dr", "backup")
    catalog_file = env.base_dir.parent / "catalog.json"
    doc = json.loads(catalog_file.read_text())
    dropped = doc["backups"].pop(0)["id"]
    catalog_file.write_text(json.dumps(doc))
    res = env.ok("dr", "backup")
    assert dropped in res.stderr and dropped not in _dirs(env), res.stderr
    assert _dirs(env) == _listed(env)
    assert env.rows() == list(range(1, 11))


def test_expire_removes_directories_a_killed_expiry_left(env: Env) -> None:
    """The state a kill -9 after the catalog rewrite leaves (built by hand): the next expire
    removes the unlisted directory, even when it has nothing else to remove."""
    env.ok("dr", "backup")
    catalog_file = env.base_dir.parent / "catalog.json"
    doc = json.loads(catalog_file.read_text())
    dropped = doc["backups"].pop(0)["id"]
    catalog_file.write_text(json.dumps(doc))
    res = env.ok("dr", "expire", "--keep", "1", "--yes")
    assert dropped in res.stdout, res.stdout
    assert _dirs(env) == _listed(env)


# ---- 12: side instances of a killed salvage ------------------------------------------------
def test_instances_lists_what_a_killed_salvage_left(env: Env) -> None:
    env.sql("insert into t select g, 'more' from generate_series(12, 5000) g")
    env.ok("dr", "backup")
    xid = env.commit("delete from t where id between 20 and 60")
    proc = subprocess.Popen([SPECTRAL, "dr", "salvage", "--table", "public.t", "--before-xid",
                             str(xid), "--yes"], cwd=env.dir, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env={k: v for k, v in os.environ.items()
                                 if not k.startswith("SPECTRAL_TEST")})
    deadline = time.monotonic() + 120
    while not (env.instances_dir.is_dir() and list(env.instances_dir.glob("r*/data"))) \
            and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = sorted(p.name for p in env.instances_dir.iterdir())
    assert left, "the salvage was killed before it made its side instance"
    res = env.ok("dr", "instances")
    assert "no restored instances" not in res.stdout
    for inst in left:
        assert inst in res.stdout, res.stdout
    listed = json.loads(env.ok("--json", "dr", "instances").stdout)
    assert {r["id"] for r in listed} == set(left)
    assert all(r["state"] == "orphaned" for r in listed), listed
    env.ok("dr", "teardown", "--all")
    assert list(env.instances_dir.iterdir()) == []
    assert _processes_under(env.instances_dir) == []


@pytest.mark.slow
def test_killed_while_the_server_was_stopped(env: Env) -> None:
    """The same with the environment's server down before the restore or undo: after the
    next command the database is as before (or the undo is finished), and the server is
    stopped again where the command did not need it."""
    target_xid = env.commit("insert into t values (11, 'target')")
    target = env.rows()
    env.commit("insert into t values (100, 'after')")
    before = env.rows()
    for step in ("restore:moved-aside", "restore:recovered"):
        env.ok("local", "down")
        _restore(env, target_xid, step)
        res = env.ok("dr", "backup")
        assert "rolled back" in res.stderr, (step, res.stderr)
        assert not _running(env), step
        env.ok("local", "up")
        assert env.rows() == before, step
    _restore(env, target_xid)
    assert env.rows() == target
    env.ok("local", "down")
    env.killed("dr", "restore", "--undo", "--yes", step="undo:recovering")
    res = env.ok("dr", "backup")
    assert "finished" in res.stderr, res.stderr
    assert not _running(env)
    env.ok("local", "up")
    assert env.rows() == before


def _running(env: Env) -> bool:
    return bool(json.loads(env.ok("local", "status", "--json").stdout)["running"])


def test_discard_killed_midway_leaves_no_undo_of_a_half_deleted_directory(env: Env) -> None:
    target_xid = env.commit("insert into t values (11, 'target')")
    target = env.rows()
    env.commit("insert into t values (100, 'after')")
    _restore(env, target_xid)
    for step in ("discard:record-removed", "discard:one-removed"):
        env.killed("dr", "restore", "--discard-previous", "--yes", step=step)
        refused = env.run("dr", "restore", "--undo", "--yes")
        assert refused.returncode == 2 and "no in-place restore to undo" in refused.stderr
        assert env.rows() == target
    env.ok("dr", "restore", "--discard-previous", "--yes")
    assert not list(env.cluster_dir.glob("data.*"))
    assert env.rows() == target


@pytest.mark.parametrize("pgb", ["posix"], indirect=True)
def test_in_place_restore_and_undo_killed_on_pgbackrest(pgb: PgbEnv) -> None:  # noqa: F811
    """The same journal under the pgBackRest provider (its restore and restore_command)."""
    pgb.run("dr", "backup")
    xid, _ = pgb_commit(pgb, 101, "target")
    pgb_commit(pgb, 102, "after")

    def ids() -> list[int]:
        return [int(r[0]) for r in pgb.sql("select id from app.ledger order by id")]

    before = ids()
    args = ("dr", "restore", "--in-place", "--yes", "--target-xid", str(xid))
    for step in ("restore:moved-aside", "restore:recovered"):
        res = spectral(*args, cwd=pgb.dir, env={**pgb.env, "SPECTRAL_TEST_CRASH_AT": step})
        assert res.returncode == -signal.SIGKILL, (step, res.stderr)
        up = spectral("local", "up", cwd=pgb.dir, env=pgb.env)
        assert up.returncode == 0 and "rolled back" in up.stderr, (step, up.stderr)
        assert ids() == before, step
    pgb.run(*args)
    assert ids() == before[:-1]
    res = spectral("dr", "restore", "--undo", "--yes", cwd=pgb.dir,
                   env={**pgb.env, "SPECTRAL_TEST_CRASH_AT": "undo:set-aside"})
    assert res.returncode == -signal.SIGKILL, res.stderr
    pgb.run("local", "up")
    assert ids() == before[:-1]
    pgb.run("dr", "restore", "--undo", "--yes")
    assert ids() == before
