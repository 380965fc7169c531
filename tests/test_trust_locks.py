"""Issue 27, defect 6: a content snapshot of a live source never stalls production. DDL that
arrives mid-scan gets its lock within seconds (the scan gives way and starts again, or says
could-not-verify naming the table and the statement), queries behind that DDL are not stuck,
and SIGTERM or Ctrl-C cancels every session's query and exits within seconds. Each test hung
(or timed out) on the code before the fix."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import SPECTRAL, ClusterFactory
from spectral.pg.conn import connect

# Two tables whose content hash is slow for their size (each row's composite value is hashed
# through its text form: a thousand floats printed per row), so the scan runs a few seconds
# over 15 MB; the table the DDL touches is empty-ish and read last.
SLOW_ROWS = 45000   # a scan of several seconds even on a quiet machine with fsync off


@pytest.fixture
def source(make_cluster: ClusterFactory, work_dir: Path) -> Iterator[tuple[Path, str]]:
    cluster = make_cluster()
    dsn = cluster.conninfo()
    with connect(dsn) as conn:
        conn.execute("create type wrap as (xs float8[])")
        for n in (1, 2):
            conn.execute(f"create table slow{n} (id int, v wrap)")
            conn.execute(f"insert into slow{n} select g, row(array_fill(g * 1.000001::float8, "
                         f"array[1000]))::wrap from generate_series(1, {SLOW_ROWS}) g")
        conn.execute("create table target (id int primary key, note text)")
        conn.execute("insert into target select g, 'x' from generate_series(1, 1000) g")
        conn.execute("vacuum analyze")
    (work_dir / "spectral.toml").write_text(
        f'[environments.src]\nprovider = "local"\ndsn = "{dsn}"\nschemas = ["public"]\n'
        f'load_bearing_tables = ["public.target"]\n')
    yield work_dir, dsn
    assert _our_backends(dsn) == []


def _test_session(dsn: str) -> psycopg.Connection[Any]:
    """The test's own sessions are not named like spectral's."""
    return psycopg.connect(dsn, autocommit=True, application_name="test")


def _our_backends(dsn: str) -> list[tuple[Any, ...]]:
    with _test_session(dsn) as conn:
        return conn.execute("select pid, state, query from pg_stat_activity "
                            "where application_name = 'spectral' "
                            "and pid <> pg_backend_pid()").fetchall()


def _no_backends_left(dsn: str, within: float = 5) -> list[tuple[Any, ...]]:
    deadline = time.monotonic() + within
    while (left := _our_backends(dsn)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


@dataclass
class Timed:
    """A statement run in its own thread and session, with how long it took."""
    dsn: str
    statement: str
    timeout_s: int = 25
    seconds: float | None = None
    error: str | None = None
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        start = time.monotonic()
        try:
            with _test_session(self.dsn) as conn:
                conn.execute(f"set statement_timeout = '{self.timeout_s}s'")
                conn.execute(self.statement)
            self.seconds = time.monotonic() - start
        except psycopg.Error as exc:
            self.error = str(exc).strip()

    def wait(self) -> None:
        self.thread.join(self.timeout_s + 10)


def _fingerprint(work: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([SPECTRAL, "--json", "dr", "fingerprint", "--content", "--workers",
                             "2"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)


def _scan_running(dsn: str, proc: subprocess.Popen[str] | None = None,
                  within: float = 60) -> None:
    """Wait until a worker reads a slow table."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the fingerprint ended before the test saw it scan "
                                 f"({proc.returncode}): {out[-300:]} {err[-500:]}")
        with _test_session(dsn) as conn:
            # a content query (its table's name may lie past track_activity_query_size)
            if conn.execute("select 1 from pg_stat_activity where application_name = "
                            "'spectral' and state = 'active' and query like "
                            "'select count(*), coalesce(sum(%'").fetchone():
                return
        time.sleep(0.05)
    raise AssertionError("the content scan never started")


def _queued(dsn: str, statement_start: str, within: float = 5) -> None:
    """Wait until a statement waits for a lock."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with _test_session(dsn) as conn:
            if conn.execute("select 1 from pg_stat_activity where wait_event_type = 'Lock' "
                            "and query like %s", (statement_start + "%",)).fetchone():
                return
        time.sleep(0.02)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:          # a hang: stop the one process this test started
        proc.kill()
    proc.communicate(timeout=30)


@pytest.mark.parametrize("ddl", ["alter table target add column extra text",
                                 "truncate target"])
def test_ddl_during_a_content_fingerprint_is_not_stalled(source: tuple[Path, str],
                                                         ddl: str) -> None:
    work, dsn = source
    proc = _fingerprint(work)
    try:
        _scan_running(dsn)
        alter = Timed(dsn, ddl)
        _queued(dsn, ddl.split()[0])
        count = Timed(dsn, "select count(*) from target")   # production's plain query
        alter.wait()
        count.wait()
        out, err = proc.communicate(timeout=90)
    finally:
        _stop(proc)
    assert alter.error is None and alter.seconds is not None, alter.error
    assert alter.seconds < 10, f"the DDL waited {alter.seconds:.1f}s behind the fingerprint"
    assert count.error is None and count.seconds is not None and count.seconds < 10, (
        count.error, count.seconds)
    assert proc.returncode in (0, 3), err
    if proc.returncode == 3:
        assert "public.target" in err and ddl.split()[0] in err.lower(), err
    else:
        doc = json.loads(out)
        assert doc["tables"]["public.slow1"]["rows"] == SLOW_ROWS


def _blocked_or_given_way(dsn: str, alter: Timed, within: float = 30) -> None:
    """Wait until a session of the fingerprint waits behind the DDL (the code before the fix:
    a worker reaching the altered table), or the DDL went through and the scan started again
    (the fix: the scan gave way)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if alter.seconds is not None or alter.error is not None:
            _scan_running(dsn)
            return
        with _test_session(dsn) as conn:
            if conn.execute("select 1 from pg_stat_activity where application_name = "
                            "'spectral' and wait_event_type = 'Lock'").fetchone():
                return
        time.sleep(0.05)
    raise AssertionError("neither blocked nor given way")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_scan_blocked_on_a_lock_exits_within_seconds(
        source: tuple[Path, str], signum: int) -> None:
    work, dsn = source
    proc = _fingerprint(work)
    try:
        _scan_running(dsn, proc)
        alter = Timed(dsn, "alter table target add column extra text", timeout_s=40)
        _queued(dsn, "alter")
        _blocked_or_given_way(dsn, alter)
        sent = time.monotonic()
        proc.send_signal(signum)
        try:
            _out, err = proc.communicate(timeout=8)
        except subprocess.TimeoutExpired:
            pytest.fail(f"signal {signum} did not stop the fingerprint within 8s")
        took = time.monotonic() - sent
        left = _no_backends_left(dsn)
        alter.wait()
    finally:
        _stop(proc)
    assert proc.returncode == 130 and "interrupted" in err, (proc.returncode, err)
    assert took < 5, f"exited {took:.1f}s after the signal"
    assert left == [], left
    assert alter.error is None, alter.error


def test_a_signal_while_waiting_for_a_held_lock_exits_within_seconds(
        source: tuple[Path, str]) -> None:
    """The coordinator waits for a lock a migration holds: SIGTERM ends the wait at once."""
    work, dsn = source
    with psycopg.connect(dsn, application_name="migration") as holder:
        holder.execute("lock table target in access exclusive mode")
        proc = _fingerprint(work)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not _our_backends(dsn):
                time.sleep(0.05)
            time.sleep(1)
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _out, err = proc.communicate(timeout=8)
            took = time.monotonic() - sent
        finally:
            _stop(proc)
        holder.rollback()
    assert proc.returncode == 130, err
    assert took < 5
    assert _no_backends_left(dsn) == []


def test_a_held_lock_is_could_not_verify_naming_the_table_and_statement(
        source: tuple[Path, str]) -> None:
    """A migration that holds its lock on a table: the fingerprint waits a few seconds for it
    (never behind it for ever), then exits 3 naming the table and the holder's statement."""
    work, dsn = source
    with psycopg.connect(dsn, application_name="migration") as holder:
        holder.execute("lock table target in access exclusive mode")
        start = time.monotonic()
        proc = _fingerprint(work)
        try:
            _out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            _stop(proc)
            pytest.fail("the fingerprint waited behind the lock for a minute")
        took = time.monotonic() - start
        holder.rollback()
    assert proc.returncode == 3, err
    message = json.loads(err.strip().splitlines()[-1])["error"]
    assert "public.target" in message and "lock table target" in message, message
    assert took < 40
    assert _no_backends_left(dsn) == []


def test_a_new_access_share_lock_waits_behind_a_queued_ddl(make_cluster: ClusterFactory
                                                           ) -> None:
    """Why workers lock up front: a reader that holds nothing yet queues behind a DDL that is
    itself queued behind a compatible holder. lock_all names the table and that DDL."""
    from spectral.verify.locks import LockConflict, lock_all

    dsn = make_cluster().conninfo()
    with connect(dsn) as conn:
        conn.execute("create table t (id int)")
    with psycopg.connect(dsn) as holder:
        holder.execute("select * from t")                       # ACCESS SHARE, kept
        alter = Timed(dsn, "alter table t add column c int", timeout_s=20)
        _queued(dsn, "alter")
        with connect(dsn, autocommit=False) as reader:
            with pytest.raises(LockConflict) as caught:
                lock_all(reader, ["public.t"], timeout=0.5)
            reader.rollback()
        holder.rollback()
        alter.wait()
    assert caught.value.table == "public.t"
    assert "alter table t add column c int" in caught.value.statement
    assert alter.error is None


def test_a_ddl_queued_before_a_worker_locks_delays_production_briefly(
        make_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The window between the coordinator's locks and a worker's: a DDL queued there makes the
    worker's lock wait behind it, the worker gives up after lock_timeout, every session lets go,
    the DDL runs, and the fingerprint starts again and reads the table as the DDL left it."""
    from spectral.verify import locks
    from spectral.verify.fingerprint import Options, take

    dsn = make_cluster().conninfo()
    with connect(dsn) as conn:
        conn.execute("create table target (id int primary key, note text)")
        conn.execute("insert into target select g, 'x' from generate_series(1, 1000) g")
    real = locks.lock_all
    alters: list[Timed] = []

    def lock_all(conn: psycopg.Connection[Any], tables: Any, timeout: float) -> None:
        if threading.current_thread() is not threading.main_thread() and not alters:
            alters.append(Timed(dsn, "alter table target add column extra text"))
            _queued(dsn, "alter")
        real(conn, tables, timeout)

    monkeypatch.setattr(locks, "lock_all", lock_all)
    start = time.monotonic()
    doc = take(dsn, Options(("public",), content=True, workers=2, lock_timeout=1))
    took = time.monotonic() - start
    alters[0].wait()
    assert alters[0].error is None and alters[0].seconds is not None, alters[0].error
    assert alters[0].seconds < 5, alters[0].seconds
    assert doc.tables["public.target"].rows == 1000
    columns = doc.schemas["public"].objects["table public.target"]["columns"]
    assert [c["name"] for c in columns] == ["id", "note", "extra"]
    assert took < 20


def test_the_snapshot_is_held_at_one_horizon_until_the_scan_ends(
        source: tuple[Path, str]) -> None:
    """The coordinator holds its snapshot until the last range is read (on a replica, its open
    transaction is what keeps replay from removing rows under the workers: verify/replica.py,
    SnapshotLost); every session holds the one xmin it exported, so the horizon held back is
    no older than the workers' own."""
    work, dsn = source
    proc = _fingerprint(work)
    seen: list[tuple[int, int]] = []
    try:
        _scan_running(dsn)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with _test_session(dsn) as conn:
                row = conn.execute(
                    "select count(*) filter (where backend_xmin is not null), "
                    "count(distinct backend_xmin::text), "
                    "count(*) filter (where state = 'active' and query like '%\"slow%') "
                    "from pg_stat_activity where application_name = 'spectral'").fetchone()
            assert row is not None
            if row[2] == 2:          # both workers are reading
                seen.append((int(row[0]), int(row[1])))
                break
            time.sleep(0.1)
        proc.communicate(timeout=90)
    finally:
        _stop(proc)
    assert proc.returncode == 0
    assert seen == [(3, 1)], seen     # the coordinator and two workers, one xmin


def test_a_full_lock_table_is_could_not_verify_with_the_setting_to_raise(
        make_cluster: ClusterFactory) -> None:
    """Each session locks every table it may read: where the server's lock table cannot hold
    that, the fingerprint says so and which setting to raise, instead of failing tables."""
    from spectral.errors import CouldNotVerify
    from spectral.verify.fingerprint import Options, take

    cluster = make_cluster()
    with connect(cluster.conninfo()) as conn:
        conn.execute("alter system set max_locks_per_transaction = 10")
        conn.execute("alter system set max_connections = 20")
        conn.execute("do $$ begin for i in 1..1500 loop "
                     "execute format('create table t%s (id int)', i); end loop; end $$")
    cluster.stop()
    cluster.start()
    with pytest.raises(CouldNotVerify) as caught:
        take(cluster.conninfo(), Options(("public",), content=True, workers=2))
    assert "max_locks_per_transaction" in str(caught.value.hint), caught.value
    assert _no_backends_left(cluster.conninfo()) == []


def test_statements_in_messages_hide_literals_and_stay_one_short_line() -> None:
    from spectral.verify.locks import LockConflict, clean_statement

    assert clean_statement("alter role app\n  password 'hunter2'") == "alter role app password '…'"
    assert clean_statement("select 'it''s'") == "select '…'"
    assert len(clean_statement("select " + "x, " * 500)) == 200
    assert clean_statement("<insufficient privilege>") == "a statement this role may not see"
    gave = LockConflict("public.t", 7, "truncate t", gave_way=True, waited=2.1)
    assert str(gave) == "gave way to pid 7 (truncate t), which waited 2.1s for table public.t"
