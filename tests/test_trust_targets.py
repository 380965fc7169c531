"""Regression tests for issue 27's defects 1 and 3: recovery targets resolved as PostgreSQL's own
recovery would stop (recoveryStopsBefore/After in xlogrecovery.c is the oracle), and the records
that end a two-phase transaction (COMMIT_PREPARED, ABORT_PREPARED) seen by every reader of the
WAL. Each integration test was reproduced on the code before the fix and fails there."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import SYSTEM_PG15, _processes_under, local_provider, spectral, sql
from spectral.errors import UsageError
from spectral.pg.binaries import PgBinaries, find_binaries
from spectral.pg.conn import connect
from spectral.pg.waldump import CommitRecord, parse_commit_line
from spectral.providers.local.provider import LocalProvider
from spectral.recovery_target import LatestTarget, TargetKind, TimeTarget, parse_time, target_of
from test_pgbackrest import Env, ids_in, needs_pgbackrest, pgb  # noqa: F401

T0 = datetime(2026, 12, 5, 7, 32, 57, 911799, tzinfo=UTC)


# ---- the parser: pg_waldump's lines as PostgreSQL 18 and 15 print them -----------------------
PG18_LINES = """\
rmgr: Transaction len (rec/tot):    258/   258, tx:        754, lsn: 0/017102C8, prev 0/01710290, desc: PREPARE gid a: 2026-12-05 07:32:57.910584 UTC
rmgr: Transaction len (rec/tot):     42/    42, tx:          0, lsn: 0/01710508, prev 0/01710410, desc: COMMIT_PREPARED 754: 2026-12-05 07:32:57.911799 UTC
rmgr: Transaction len (rec/tot):     42/    42, tx:          0, lsn: 0/01710538, prev 0/01710508, desc: ABORT_PREPARED 755: 2026-12-05 07:32:57.911961 UTC
rmgr: Transaction len (rec/tot):    545/   545, tx:          0, lsn: 0/01716D78, prev 0/017168E0, desc: COMMIT_PREPARED 759: 2026-12-05 07:35:04.58118 UTC; rels: base/5/16390 base/5/16387; subxacts: 760; dropped stats: 2/5/16387; inval msgs: catcache 82 catcache 81 relcache 16390
rmgr: Transaction len (rec/tot):     34/    34, tx:        758, lsn: 0/017163D0, prev 0/01716390, desc: COMMIT 2026-12-05 07:35:04.579839 UTC
"""  # noqa: E501
PG15_LINES = """\
rmgr: Transaction len (rec/tot):    258/   258, tx:        726, lsn: 0/01759888, prev 0/01759850, desc: PREPARE gid a: 2026-12-05 07:32:58.986236 UTC
rmgr: Transaction len (rec/tot):     42/    42, tx:          0, lsn: 0/01759AC8, prev 0/017599D0, desc: COMMIT_PREPARED 726: 2026-12-05 07:32:58.98654 UTC
rmgr: Transaction len (rec/tot):     42/    42, tx:          0, lsn: 0/01759AF8, prev 0/01759AC8, desc: ABORT_PREPARED 727: 2026-12-05 07:32:58.98661 UTC
rmgr: Transaction len (rec/tot):     82/    82, tx:        731, lsn: 0/017601D8, prev 0/0175FD28, desc: ABORT 2026-12-05 07:35:05.659105 UTC; subxacts: 732 733
"""  # noqa: E501


def test_the_parser_reads_two_phase_ends_with_the_prepared_xid() -> None:
    recs = [parse_commit_line(ln) for ln in PG18_LINES.splitlines()]
    assert recs[0] is None                               # PREPARE ends nothing
    assert recs[1] == CommitRecord(0x01710508, 754, T0, True, True)
    assert recs[2] is not None and (recs[2].xid, recs[2].committed, recs[2].prepared) == \
        (755, False, True)
    assert recs[3] is not None and (recs[3].xid, recs[3].subxacts) == (759, (760,))
    assert recs[3].time == datetime(2026, 12, 5, 7, 35, 4, 581180, tzinfo=UTC)
    assert recs[4] is not None and (recs[4].xid, recs[4].prepared) == (758, False)
    recs = [parse_commit_line(ln) for ln in PG15_LINES.splitlines()]
    assert recs[0] is None
    assert recs[1] is not None and (recs[1].xid, recs[1].committed) == (726, True)
    assert recs[1].time == datetime(2026, 12, 5, 7, 32, 58, 986540, tzinfo=UTC)
    assert recs[2] is not None and (recs[2].xid, recs[2].committed) == (727, False)
    assert recs[3] is not None and (recs[3].xid, recs[3].subxacts) == (731, (732, 733))


@pytest.mark.parametrize("major", ["18", "15"])
def test_the_parser_on_what_pg_waldump_prints_today(major: str, make_cluster) -> None:  # type: ignore[no-untyped-def]
    """Not only the captured lines: a real cluster of each major, a real pg_waldump."""
    from spectral.runner import run

    if major == "15" and not (SYSTEM_PG15 / "postgres").exists():
        pytest.skip("no Debian PostgreSQL 15")
    b = find_binaries(SYSTEM_PG15 if major == "15" else None)
    c = make_cluster(b)
    c.write_conf({"wal_level": "replica", "fsync": "off", "max_prepared_transactions": "5"})
    c.stop(timeout=20)
    c.start()
    with c.connect(autocommit=True) as conn:
        conn.execute("create table t (id int)")
        start = conn.execute("select pg_current_wal_lsn()::text").fetchone()[0]
        conn.execute("begin")
        conn.execute("insert into t values (1)")
        xid = conn.execute("select txid_current()").fetchone()[0]
        conn.execute("prepare transaction 'g1'")
        conn.execute("commit prepared 'g1'")
        conn.execute("select pg_switch_wal()")
        end = conn.execute("select pg_current_wal_lsn()::text").fetchone()[0]
    out = run([b.path("pg_waldump"), "-p", str(c.data_dir / "pg_wal"), "-s", start, "-e", end],
              timeout=60, check=False, env={"TZ": "UTC"}).stdout
    recs = [r for r in map(parse_commit_line, out.splitlines()) if r is not None]
    assert [(r.xid, r.committed, r.prepared) for r in recs] == [(int(xid), True, True)], out


# ---- where PostgreSQL's recovery_target_time stops: a pure function -------------------------
def _rec(lsn: int, at: datetime, committed: bool = True) -> CommitRecord:
    return CommitRecord(lsn, lsn, at, committed)


def test_time_stop_follows_recovery_stops_before() -> None:
    from spectral.providers.local.targets import time_stop

    s = timedelta(seconds=1)
    # two commits sharing one time, an abort later, then a commit whose clock ran behind
    recs = [_rec(1, T0), _rec(2, T0 + s), _rec(3, T0 + s), _rec(4, T0 + 3 * s, committed=False),
            _rec(5, T0 + 2 * s)]

    def stop(at: datetime, exclusive: bool) -> CommitRecord | None:
        return time_stop(recs, TimeTarget(at, exclusive=exclusive))

    assert stop(T0 + s, exclusive=False) == recs[3]    # the abort, later than T
    assert stop(T0 + s, exclusive=True) == recs[1]     # both commits at T excluded
    assert stop(T0, exclusive=True) == recs[0]
    assert stop(T0 - s, exclusive=False) == recs[0]
    # T after the last record's time but before an earlier one's: PostgreSQL stops there
    assert stop(T0 + 2 * s, exclusive=False) == recs[3]
    assert stop(T0 + 3 * s, exclusive=True) == recs[3]
    assert stop(T0 + 3 * s, exclusive=False) is None   # nothing later: the end


def test_target_times_round_to_microseconds_as_postgresql_does() -> None:
    """PostgreSQL rounds a time's fraction to microseconds (rint); truncating it would move an
    inclusive target a microsecond before a commit PostgreSQL counts as at or before it."""
    assert parse_time("2026-12-05T07:32:57.91179851Z") == T0
    assert parse_time("2026-12-05T07:32:57.9117994Z") == T0
    assert parse_time("2026-12-05T07:32:59.9999996Z") == datetime(2026, 12, 5, 7, 33, 0,
                                                                   tzinfo=UTC)
    assert parse_time("2026-12-05T08:32:57.911799+01:00") == T0
    assert parse_time("2026-12-05 07:32:57.911799") == T0


# ---- 1: an exclusive time target at the archive's last commit ---------------------------------
@dataclass
class Cli:
    dir: Path

    def run(self, *args: str, expect: int = 0) -> Any:
        res = spectral(*args, cwd=self.dir)
        assert res.returncode == expect, (args, res.stdout, res.stderr)
        if "--json" in args and res.stdout.strip():
            return json.loads(res.stdout)
        return res.stderr if expect else res.stdout

    def dsn(self) -> str:
        return str(self.run("local", "status", "--json")["dsn"])

    def sql(self, query: str) -> list[tuple[Any, ...]]:
        with connect(self.dsn()) as conn:
            cur = conn.execute(query)
            return cur.fetchall() if cur.description else []


@pytest.fixture
def cli(work_dir: Path) -> Iterator[Cli]:
    (work_dir / "spectral.toml").write_text(
        '[environments.t]\nprovider = "local"\nposture = "pitr"\n')
    e = Cli(work_dir)
    try:
        e.run("local", "up")
        e.sql("create table items (id int primary key, note text); "
              "insert into items select g, 'base' from generate_series(1, 100) g")
        yield e
    finally:
        spectral("dr", "teardown", "--all", cwd=work_dir)
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


def commit_row(dsn: str, row: int, table: str = "items") -> tuple[int, datetime]:
    """One row in its own transaction: its xid and commit time (the commit record's)."""
    with connect(dsn, autocommit=False) as conn:
        conn.execute(f"insert into {table} values (%s, 'x')", (row,))
        xid = int(conn.execute("select txid_current()").fetchone()[0])  # type: ignore[index]
        conn.commit()
    with connect(dsn) as conn:
        got = conn.execute(f"select pg_xact_commit_timestamp('{xid}'::xid)").fetchone()
    assert got is not None
    return xid, got[0]


def rows(dsn: str, table: str = "items") -> list[int]:
    with connect(dsn) as conn:
        return [r[0] for r in conn.execute(f"select id from {table} where id > 100 order by id")]


def test_exclusive_time_at_the_last_commit_leaves_it_out(cli: Cli) -> None:
    cli.run("dr", "backup")
    dsn = cli.dsn()
    commit_row(dsn, 1001)
    _xid, last = commit_row(dsn, 1002)                 # the bad last transaction
    assert last.microsecond                            # a time with microseconds
    inst = cli.run("--json", "dr", "restore", "--target-time", last.isoformat(), "--exclusive")
    assert rows(inst["dsn"]) == [1001]
    cli.run("dr", "teardown", inst["id"])
    inst = cli.run("--json", "dr", "restore", "--target-time", last.isoformat())
    assert rows(inst["dsn"]) == [1001, 1002]          # inclusive: at T is kept
    cli.run("dr", "teardown", inst["id"])


@pytest.mark.server
def test_time_targets_at_and_after_the_last_commit(work_dir: Path, bins: PgBinaries) -> None:
    """Exclusive and inclusive at a commit time, and a time after the last commit but before
    the last record (idle WAL after it): each holds what PostgreSQL's recovery would."""
    with local_provider(work_dir, bins, "items") as env:
        env.backup()
        dsn = env.local.cluster().conninfo()
        _, first = commit_row(dsn, 1001)
        _, last = commit_row(dsn, 1002)
        for at, exclusive, want in ((last, True, [1001]), (last, False, [1001, 1002]),
                                    (first, True, []), (first, False, [1001])):
            inst = env.restore(TimeTarget(at, exclusive=exclusive))
            assert rows(inst.dsn) == want, (at, exclusive)
            env.teardown(inst.id)
        time.sleep(0.2)
        sql(env, "checkpoint")                          # a record after the last commit
        between = datetime.now(UTC)
        sql(env, "checkpoint")
        for exclusive in (True, False):
            inst = env.restore(TimeTarget(between, exclusive=exclusive))
            assert rows(inst.dsn) == [1001, 1002]
            env.teardown(inst.id)


@pytest.mark.server
def test_exclusive_time_at_the_last_commit_before_a_hole(work_dir: Path,
                                                         bins: PgBinaries) -> None:
    """The last commit before a hole in the archive: exclusive at its time stops before it, in
    WAL that is all there; it was refused as if the target lay in the hole."""
    with local_provider(work_dir, bins, "items") as env:
        env.backup()
        dsn = env.local.cluster().conninfo()
        commit_row(dsn, 1001)
        _, last = commit_row(dsn, 1002)
        env.flush_archive()
        time.sleep(0.2)
        commit_row(dsn, 1003)
        lost = env.flush_archive()
        assert lost is not None
        (env.repo.archive / lost).unlink()
        env.backup()
        commit_row(dsn, 1004)
        inst = env.restore(TimeTarget(last, exclusive=True))
        assert rows(inst.dsn) == [1001]
        env.teardown(inst.id)


@needs_pgbackrest
@pytest.mark.parametrize("pgb", ["posix"], indirect=True)
def test_pgbackrest_exclusive_time_at_the_last_commit(pgb: Env) -> None:  # noqa: F811
    pgb.run("dr", "backup")
    time.sleep(1.2)              # after the backup's whole-second stop time
    dsn = pgb.dsn()
    commit_row(dsn, 101, "app.ledger")
    _, last = commit_row(dsn, 102, "app.ledger")
    inst = pgb.run("--json", "dr", "restore", "--target-time", last.isoformat(), "--exclusive")
    assert ids_in(pgb, inst)[-2:] == [100, 101]
    pgb.run("dr", "teardown", inst["id"])


# ---- 3: two-phase commits ---------------------------------------------------------------------
@contextlib.contextmanager
def prepared_env(work_dir: Path, bins: PgBinaries) -> Iterator[LocalProvider]:
    """A local environment whose server allows prepared transactions (set as a person would,
    with ALTER SYSTEM and a restart), with a backup taken after the setting."""
    with local_provider(work_dir, bins, "items") as env:
        sql(env, "alter system set max_prepared_transactions = 10")
        env.local.down()
        env.local.up()
        env.backup()
        yield env


def prepare(dsn: str, statement: str, gid: str) -> int:
    with connect(dsn, autocommit=True) as conn:
        conn.execute("begin")
        conn.execute(statement)
        got = conn.execute("select txid_current()").fetchone()
        conn.execute(f"prepare transaction '{gid}'")
    assert got is not None
    return int(got[0])


def finish(dsn: str, how: str, gid: str) -> None:
    with connect(dsn, autocommit=True) as conn:
        conn.execute(f"{how} prepared '{gid}'")


def count(dsn: str) -> int:
    with connect(dsn) as conn:
        got = conn.execute("select count(*) from items").fetchone()
    assert got is not None
    return int(got[0])


@pytest.fixture(params=["18", "15"])
def any_bins(request: pytest.FixtureRequest, bins: PgBinaries) -> PgBinaries:
    if request.param == "18":
        return bins
    if not (SYSTEM_PG15 / "postgres").exists():
        pytest.skip("no Debian PostgreSQL 15")
    return find_binaries(SYSTEM_PG15)


@pytest.mark.server
def test_commit_prepared_after_the_target_time_is_not_restored(work_dir: Path,
                                                               any_bins: PgBinaries) -> None:
    with prepared_env(work_dir, any_bins) as env:
        dsn = env.local.cluster().conninfo()
        xid = prepare(dsn, "delete from items where id <= 10", "p1")
        time.sleep(0.3)
        between = datetime.now(UTC)
        time.sleep(0.3)
        finish(dsn, "commit", "p1")
        env.flush_archive()
        window = env.window()                      # its commit is the window's end
        assert window.latest_time is not None and window.latest_time > between
        end = sql(env, "select pg_current_wal_lsn()::text")[0][0]
        assert env.wal_archive().newest_commit_before(end) == window.latest_time
        inst = env.restore(TimeTarget(between))
        assert count(inst.dsn) == 100              # prepared, not committed, at T
        with connect(inst.dsn) as conn:            # as PostgreSQL's recovery leaves it
            assert conn.execute("select gid from pg_prepared_xacts").fetchall() == [("p1",)]
            conn.execute("rollback prepared 'p1'")
        env.teardown(inst.id)
        inst = env.restore(target_of(TargetKind.XID, str(xid)))
        assert count(inst.dsn) == 90
        env.teardown(inst.id)
        listed = env.wal_archive().commits_between(between, datetime.now(UTC))
        assert [(t["xid"], t["committed"]) for t in listed] == [(xid, True)]


@pytest.mark.server
def test_find_damage_sees_a_delete_committed_by_commit_prepared(work_dir: Path,
                                                                bins: PgBinaries) -> None:
    from spectral.playbooks.damage import find_damage

    with prepared_env(work_dir, bins) as env:
        dsn = env.local.cluster().conninfo()
        xid = prepare(dsn, "delete from items where id <= 10", "p1")
        finish(dsn, "commit", "p1")
        aborted = prepare(dsn, "delete from items where id > 90", "p2")
        finish(dsn, "rollback", "p2")
        with connect(dsn) as conn:
            found = find_damage(env.wal_archive(), conn, "items")
        assert [(d.xid, d.op, d.rows) for d in found] == [(xid, "delete", 10)]
        inst = env.restore(target_of(TargetKind.XID, str(xid), exclusive=True))
        assert count(inst.dsn) == 100
        env.teardown(inst.id)
        with pytest.raises(UsageError, match="aborted"):
            env.restore(target_of(TargetKind.XID, str(aborted)))


@pytest.mark.server
def test_find_damage_sees_a_delete_made_in_a_subtransaction(work_dir: Path,
                                                            bins: PgBinaries) -> None:
    """A DELETE under a savepoint is written with the subtransaction's xid; the commit record
    names it among its subxacts, and the target is the top-level transaction."""
    from spectral.playbooks.damage import find_damage

    with local_provider(work_dir, bins, "items") as env:
        env.backup()
        dsn = env.local.cluster().conninfo()
        with connect(dsn, autocommit=False) as conn:
            conn.execute("savepoint s")
            conn.execute("delete from items where id <= 10")
            conn.execute("release savepoint s")
            got = conn.execute("select txid_current()").fetchone()
            conn.commit()
        assert got is not None
        xid = int(got[0])
        with connect(dsn) as conn:
            found = find_damage(env.wal_archive(), conn, "items")
        assert [(d.xid, d.op, d.rows) for d in found] == [(xid, "delete", 10)]
        with pytest.raises(UsageError, match=f"subtransaction of transaction {xid}"):
            env.restore(target_of(TargetKind.XID, str(xid + 1)))


@pytest.mark.server
def test_in_place_losses_count_a_commit_at_an_exclusive_time(work_dir: Path,
                                                             bins: PgBinaries) -> None:
    """What an in-place restore takes out of the live database: an exclusive time target at a
    commit's time takes that commit out, and it must be listed."""
    from spectral.playbooks.damage import writes_after

    with prepared_env(work_dir, bins) as env:
        dsn = env.local.cluster().conninfo()
        _, at = commit_row(dsn, 1001)
        xid = prepare(dsn, "delete from items where id <= 10", "p1")
        finish(dsn, "commit", "p1")
        with connect(dsn) as conn:
            lost = writes_after(env.wal_archive(), conn, TimeTarget(at, exclusive=True))
            kept = writes_after(env.wal_archive(), conn, TimeTarget(at))
        assert [t["rows"] for t in lost] == [{"public.items": 1}, {"public.items": 10}]
        assert [t["xid"] for t in kept] == [xid]


@pytest.mark.server
def test_an_in_place_restore_names_the_prepared_transaction_it_brings_back(
        work_dir: Path, bins: PgBinaries) -> None:
    """Prepared before T, committed after it: the rewound live database holds it pending again,
    with its locks, as PostgreSQL's recovery leaves it; the result names it for the operator."""
    with prepared_env(work_dir, bins) as env:
        dsn = env.local.cluster().conninfo()
        prepare(dsn, "delete from items where id <= 10", "p1")
        time.sleep(0.3)
        between = datetime.now(UTC)
        time.sleep(0.3)
        finish(dsn, "commit", "p1")
        done = env.restore_in_place(TimeTarget(between), confirmed=True)
        assert done.reached is not None and done.reached.prepared == ("p1",)
        live = env.local.cluster().conninfo()
        assert count(live) == 100
        finish(live, "rollback", "p1")
        assert count(live) == 100


@pytest.mark.server
def test_a_restore_across_a_rewind_that_brought_a_prepared_transaction_back(
        work_dir: Path, bins: PgBinaries) -> None:
    """An in-place restore to between PREPARE and COMMIT PREPARED: its promotion writes an
    end-of-recovery checkpoint while the transaction is prepared, in the PREPARE's segment.
    Under hot standby, a later recovery replaying that checkpoint reads the prepared state back
    from pg_wal, where the old timeline's segment never is (it came through restore_command):
    FATAL "requested WAL segment ... has already been removed" (found by the lifecycle test;
    PostgreSQL with hot standby off restores it). Restores run with hot standby off."""
    with prepared_env(work_dir, bins) as env:
        dsn = env.local.cluster().conninfo()
        prepare(dsn, "insert into items values (5001, 'prepared')", "p1")
        time.sleep(0.3)
        between = datetime.now(UTC)
        time.sleep(0.3)
        finish(dsn, "commit", "p1")
        done = env.restore_in_place(TimeTarget(between), confirmed=True)
        assert done.reached is not None and done.reached.prepared == ("p1",)
        finish(env.local.cluster().conninfo(), "rollback", "p1")
        sql(env, "insert into items values (5002, 'after the rewind')")
        inst = env.restore(LatestTarget())
        try:
            assert count(inst.dsn) == 101
        finally:
            env.teardown(inst.id)


@pytest.mark.server
def test_a_setting_raised_after_the_backup_never_hangs_nor_pauses_short(
        work_dir: Path, bins: PgBinaries) -> None:
    """max_prepared_transactions raised after the backup: the WAL records it, and hot standby
    then pauses recovery at that record ("insufficient parameter settings"). A restore that
    promotes (no hot standby) goes on to T; a --pause restore is refused, never reported as
    paused at T (before: the promoting restore waited 24 h, the paused one held the data of
    before the change with exit 0; found by an adversarial probe)."""
    from spectral.errors import CouldNotVerify

    with local_provider(work_dir, bins, "items") as env:
        env.backup()
        sql(env, "alter system set max_prepared_transactions = 20")
        env.local.down()
        env.local.up()
        sql(env, "insert into items values (5001, 'before T')")
        time.sleep(0.3)
        at = datetime.now(UTC)
        time.sleep(0.3)
        sql(env, "insert into items values (5002, 'after T')")
        inst = env.restore(TimeTarget(at))
        try:
            assert count(inst.dsn) == 101
        finally:
            env.teardown(inst.id)
        with pytest.raises(CouldNotVerify, match="insufficient parameter settings"):
            env.restore(TimeTarget(at), pause=True)
        assert env.instances() == []
