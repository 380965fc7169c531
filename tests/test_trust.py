"""Regression tests for issue 13's defects: each was reproduced on the code before it and
fails there. Library-level where that reaches the defect, the real command line where the
defect was in what a user sees."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import local_provider, spectral, sql
from spectral.errors import RefusedError, UsageError
from spectral.pg.binaries import PgBinaries
from spectral.pg.conn import connect
from spectral.providers.local.provider import LocalProvider
from spectral.recovery_target import LatestTarget, TargetKind, target_of


@pytest.fixture
def env(work_dir: Path, bins: PgBinaries) -> Iterator[LocalProvider]:
    with local_provider(work_dir, bins, "items") as provider:
        yield provider


def on(dsn: str, query: str) -> list[tuple]:
    with connect(dsn) as conn:
        return conn.execute(query).fetchall()


def commit(p: LocalProvider, query: str) -> tuple[int, datetime]:
    """Run `query` in its own transaction; its xid and commit time."""
    with connect(p.local.cluster().conninfo(), autocommit=False) as conn:
        conn.execute(query)
        xid = int(conn.execute("select txid_current()").fetchone()[0])  # type: ignore[index]
        conn.commit()
    when = sql(p, f"select pg_xact_commit_timestamp('{xid}'::xid)")[0][0]
    return xid, when


def idle_segments(p: LocalProvider, n: int) -> None:
    """Segments that hold no commit: a checkpoint record, then a switch, archived."""
    for _ in range(n):
        sql(p, "checkpoint")
        p.flush_archive()


# ---- 1: teardown never leaves the instances folder -----------------------------------------
def test_teardown_refuses_ids_that_are_not_instance_ids(env: LocalProvider,
                                                        work_dir: Path) -> None:
    victim = work_dir / "victim"
    victim.mkdir()
    (victim / "precious").write_text("x")
    env.local.paths.instances_dir.mkdir(parents=True, exist_ok=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)",
                                  str(victim)])   # the path on its command line
    try:
        for bad in (str(victim), f"../../{victim.name}", "..", "../backups", "r1/../..", ""):
            with pytest.raises(UsageError, match="not an instance id"):
                env.teardown(bad)
        (env.local.paths.instances_dir / "r20260101T000000000").symlink_to(victim)
        with pytest.raises(UsageError, match="not touching it"):
            env.teardown("r20260101T000000000")
        assert (victim / "precious").exists()
        assert bystander.poll() is None            # nothing was signalled by command line
        assert env.repo.root.is_dir()
    finally:
        bystander.kill()
        bystander.wait()
        (env.local.paths.instances_dir / "r20260101T000000000").unlink(missing_ok=True)


def test_teardown_cli_exit_code_and_nothing_deleted(work_dir: Path) -> None:
    victim = work_dir / "x"
    victim.mkdir()
    for bad in (str(victim), "../../../../" + str(victim).lstrip("/"), ".."):
        res = spectral("dr", "teardown", bad, cwd=work_dir)
        assert res.returncode == 2, res.stderr
        assert "not an instance id" in res.stderr and res.stderr.count("\n") <= 2
    assert victim.is_dir()


# ---- 3: a time target is the state at that time, whatever the idle WAL after it -------------
def test_time_target_before_a_reseed_and_idle_segments(env: LocalProvider) -> None:
    env.backup()
    commit(env, "insert into items values (1000, 'before')")
    time.sleep(1.1)
    target = datetime.now(UTC)
    time.sleep(1.1)
    commit(env, "delete from items")                     # the re-seed
    commit(env, "insert into items values (2000, 'after')")
    env.backup()
    idle_segments(env, 10)        # more segments without a commit than the old look-back of 8
    window = env.window()
    assert window.latest_time is not None and window.latest_time > target
    inst = env.restore(target_of(TargetKind.TIME, target.isoformat()))
    assert on(inst.dsn, "select count(*), max(id) from items") == [(101, 1000)]
    assert inst.backup_id == env.backups()[0].id          # never a backup taken after T


# ---- 4: the window is a set of intervals ----------------------------------------------------
def test_targets_after_a_later_backup_are_reachable_across_a_hole(env: LocalProvider) -> None:
    env.backup()
    commit(env, "insert into items values (1001, 'before the hole')")
    env.flush_archive()
    commit(env, "insert into items values (1002, 'in the lost segment')")
    lost = env.flush_archive()
    assert lost is not None
    (env.repo.archive / lost).unlink()
    second = env.backup()
    _xid, after = commit(env, "insert into items values (1003, 'after the second backup')")
    xid, _ = commit(env, "insert into items values (1004, 'later still')")
    window = env.window()
    assert len(window.intervals) == 2 and window.gaps[0].missing_from == lost
    assert window.intervals[1].backups == [second.id]
    inst = env.restore(target_of(TargetKind.TIME, after.isoformat()))
    assert on(inst.dsn, "select max(id) from items where id > 1000") == [(1003,)]
    inst = env.restore(target_of(TargetKind.XID, str(xid), exclusive=True))
    assert on(inst.dsn, "select max(id) from items where id > 1000") == [(1003,)]
    inst = env.restore(LatestTarget())   # the hole is before the newest
    assert on(inst.dsn, "select max(id) from items where id > 1000") == [(1004,)]


# ---- 5: an idle database drills -----------------------------------------------------------
def test_lsn_target_on_an_idle_segment_boundary_is_the_end_of_the_wal(env: LocalProvider) -> None:
    env.backup()
    commit(env, "insert into items values (1005, 'last write')")
    env.flush_archive()
    idle = sql(env, "select pg_current_wal_lsn()::text")[0][0]   # a segment boundary now
    assert idle.endswith("000000")
    inst = env.restore(target_of(TargetKind.LSN, idle))
    assert on(inst.dsn, "select max(id) from items") == [(1005,)]
    assert inst.reached and inst.reached.resolved
    env.teardown(inst.id)
    # where the next record would start (past the new segment's page header): the insert
    # position a snapshot of the idle database reads, the same state
    inserting = sql(env, "select pg_current_wal_insert_lsn()::text")[0][0]
    assert inserting.endswith("000028")
    inst = env.restore(target_of(TargetKind.LSN, inserting))
    assert on(inst.dsn, "select max(id) from items") == [(1005,)]


# ---- 7: a torn ledger line ---------------------------------------------------------------
def test_torn_last_ledger_line_is_named_refused_and_repairable(work_dir: Path) -> None:
    from spectral.confirm import AssumeNo, AssumeYes
    from spectral.ledger import EntryKind, Ledger
    from spectral.ledger.store import LedgerDamaged

    ledger = Ledger(work_dir / "evidence")
    for n in range(3):
        ledger.append(EntryKind.SNAPSHOT, "t", {"n": n})
    with open(ledger.path, "a") as f:
        f.write('{"seq": 4, "kind": "dri')               # a write cut short
    assert [e.seq for e in ledger.entries()] == [1, 2, 3]   # readers keep working
    problems = ledger.verify()
    assert problems and problems[0].line == 4 and "not valid JSON" in problems[0].problem
    with pytest.raises(LedgerDamaged, match="line 4"):
        ledger.append(EntryKind.SNAPSHOT, "t", {})
    with pytest.raises(RefusedError, match="not confirmed"):
        ledger.repair(AssumeNo(), "t")
    entry = ledger.repair(AssumeYes(), "t")
    assert entry.kind is EntryKind.REPAIR and entry.seq == 4 and entry.data["line"] == 4
    assert ledger.verify() == []
    # an edited entry in the middle is never "repaired"
    lines = ledger.path.read_text().splitlines()
    lines[1] = lines[1].replace('"n": 1', '"n": 9')
    ledger.path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RefusedError, match="never repaired"):
        ledger.repair(AssumeYes(), "t")


@pytest.mark.parametrize("line", ["7", '{"seq": "x", "at": "2026-01-01T00:00:00+00:00", '
                                        '"kind": "drill", "environment": "t", "data": {}, '
                                        '"prev": "", "hash": ""}'])
def test_odd_ledger_lines_are_one_clear_line(work_dir: Path, line: str) -> None:
    from spectral.ledger import EntryKind, Ledger

    ledger = Ledger(work_dir / "evidence")
    ledger.append(EntryKind.SNAPSHOT, "t", {})
    with open(ledger.path, "a") as f:
        f.write(line + "\n")
    assert len(ledger.entries()) == 1
    assert any(p.line == 2 for p in ledger.verify())


def test_torn_ledger_cli(work_dir: Path) -> None:
    assert spectral("dr", "incident", "record", "--playbook", "schema-drop", "--summary", "x",
                    cwd=work_dir).returncode == 0
    path = work_dir / ".spectral" / "local" / "evidence" / "ledger.jsonl"
    text = path.read_text()
    path.write_text(text + text[: len(text) // 2])      # half an entry, no newline
    res = spectral("dr", "log", cwd=work_dir)
    assert res.returncode == 0 and "#1" in res.stdout
    res = spectral("dr", "log", "verify", cwd=work_dir)
    assert res.returncode == 1 and "line 2" in res.stdout
    res = spectral("dr", "incident", "record", "--playbook", "schema-drop", "--summary", "y",
                   cwd=work_dir)
    assert res.returncode == 3 and "line 2" in res.stderr and "Traceback" not in res.stderr
    assert "dr log repair" in res.stderr
    assert spectral("dr", "log", "repair", "--yes", cwd=work_dir).returncode == 0
    assert spectral("dr", "log", "verify", cwd=work_dir).returncode == 0


# ---- 9, 10, 12: arguments checked first, times normalised, --debug keeps the exit code ------
def test_bad_drill_arguments_are_usage_errors_and_not_recorded(work_dir: Path) -> None:
    for args in (("--target-time", "abc"), ("--backup", "nosuch")):
        res = spectral("dr", "drill", "functional", *args, cwd=work_dir)
        assert res.returncode == 2, res.stderr
    log = spectral("dr", "log", "--json", cwd=work_dir)
    assert json.loads(log.stdout or "[]") == []


def test_target_arguments_in_the_users_terms() -> None:
    from spectral.recovery_target import from_flags

    with pytest.raises(UsageError, match="expected a transaction id"):
        from_flags(False, None, "abc", None, None, False)
    with pytest.raises(UsageError, match="expected a WAL location"):
        from_flags(False, None, None, "zz", None, False)
    t = from_flags(False, "2026-11-26T21:30:00Z", None, None, None, False)
    assert t.value == "2026-11-26T21:30:00+00:00"


def test_iso_z_time_reaches_postgresql_in_its_own_format(tmp_path: Path) -> None:
    from spectral.providers.local.recovery import recovery_failure, recovery_settings

    conf = recovery_settings(target_of(TargetKind.TIME, "2026-11-26T21:30:00Z"),
                             f"cp {tmp_path}/%f %p", pause=False)
    assert conf["recovery_target_time"] == "2026-11-26 21:30:00.000000+00"
    log = ('2026-11-26 LOG:  invalid value for parameter "recovery_target_time": "x"\n'
           '2026-11-26 FATAL:  configuration file "/d/spectral.conf" contains errors\n')
    assert recovery_failure(log).startswith('invalid value for parameter "recovery_target_time"')


def test_why_recovery_ended_is_not_a_poll_turned_away() -> None:
    """A 10 GB drill on a full disk said "recovery failed: the database system is in recovery
    mode": the FATAL of spectral's own poll, logged after the startup process's PANIC."""
    from spectral.providers.local.recovery import recovery_failure

    log = ("LOG:  redo starts at 5/2000028\n"
           "PANIC:  could not write to file \"pg_wal/xlogtemp.77\": No space left on device\n"
           "LOG:  startup process (PID 77) was terminated by signal 6: Aborted\n"
           "FATAL:  the database system is in recovery mode\n"
           "FATAL:  the database system is starting up\n")
    assert recovery_failure(log) == ('could not write to file "pg_wal/xlogtemp.77": No space '
                                     'left on device')
    assert recovery_failure("FATAL:  the database system is starting up\n") is None
    assert recovery_failure("FATAL:  requested timeline 3 is not a child of this server's "
                            "history\n") == "requested timeline 3 is not a child of this " \
                                            "server's history"


def test_debug_keeps_the_documented_exit_codes(work_dir: Path) -> None:
    res = spectral("--debug", "dr", "teardown", "nosuch", cwd=work_dir)
    assert res.returncode == 2 and "Traceback" in res.stderr
    res = spectral("dr", "restore", "--latest", "--debug", cwd=work_dir)
    assert res.returncode == 3, res.stderr   # no backup: could not verify


# ---- 14, 15: in-place restores and undos, timelines several deep ----------------------------
def test_time_target_after_restore_and_undo_follows_the_live_timeline(env: LocalProvider) -> None:
    env.backup()
    _, t_keep = commit(env, "insert into items values (1100, 'keep')")
    time.sleep(1.1)
    commit(env, "insert into items values (1101, 'rewound')")
    idle_segments(env, 4)      # the history the restore abandons holds the newest segments
    commit(env, "insert into items values (1105, 'rewound too')")   # and the newest commit
    env.flush_archive()
    env.restore_in_place(target_of(TargetKind.TIME, t_keep.isoformat()), confirmed=True)
    commit(env, "insert into items values (1102, 'on the restore')")
    env.undo_in_place()
    env.restore_in_place(target_of(TargetKind.TIME, t_keep.isoformat()), confirmed=True)
    commit(env, "insert into items values (1103, 'live, before the target')")
    time.sleep(1.1)
    target = datetime.now(UTC)
    time.sleep(1.1)
    commit(env, "insert into items values (1104, 'after the target')")
    env.flush_archive()
    inst = env.restore(target_of(TargetKind.TIME, target.isoformat()))
    got = [r[0] for r in on(inst.dsn, "select id from items where id >= 1100 order by 1")]
    assert got == [1100, 1103]


def test_restores_after_two_in_place_restores_and_undos(env: LocalProvider) -> None:
    env.backup()
    for n in range(2):
        xid, _ = commit(env, f"insert into items values ({1200 + n}, 'x')")
        env.restore_in_place(target_of(TargetKind.XID, str(xid), exclusive=True),
                             confirmed=True)
        env.undo_in_place()
    xid, _ = commit(env, "insert into items values (1210, 'live')")
    commit(env, "insert into items values (1211, 'after')")
    env.flush_archive()
    assert env.window().gaps == []
    inst = env.restore(target_of(TargetKind.XID, str(xid)))
    got = [r[0] for r in on(inst.dsn, "select id from items where id >= 1200 order by 1")]
    assert got == [1200, 1201, 1210]


# ---- 18: an undo belongs to its restore -----------------------------------------------------
def test_undo_applies_only_to_the_newest_restore_once(env: LocalProvider) -> None:
    env.backup()
    x1, _ = commit(env, "insert into items values (1300, 'one')")
    env.restore_in_place(target_of(TargetKind.XID, str(x1), exclusive=True), confirmed=True)
    commit(env, "insert into items values (1301, 'written after the first restore')")
    x2, _ = commit(env, "insert into items values (1302, 'two')")
    done = env.restore_in_place(target_of(TargetKind.XID, str(x2), exclusive=True),
                                confirmed=True)
    assert len(done.discarded) == 1                 # the first restore's copy expired
    env.undo_in_place()
    assert [r[0] for r in sql(env, "select id from items where id >= 1300 order by 1")] \
        == [1301, 1302]
    with pytest.raises(RefusedError, match="no in-place restore to undo"):
        env.undo_in_place()                            # never reaches further back
    assert [r[0] for r in sql(env, "select id from items where id >= 1300 order by 1")] \
        == [1301, 1302]
    from spectral.ledger import EntryKind, Ledger
    from spectral.ledger.outbox import Outbox, deliver

    ledger = Ledger(env.local.paths.state_dir / "evidence")   # what the features do
    assert deliver(Outbox(env.local.paths.state_dir), ledger, "trust") == 3
    recorded = [e.data["summary"] for e in ledger.entries() if e.kind is EntryKind.RESTORE]
    assert len(recorded) == 3 and recorded[-1].startswith("undo of the in-place restore")


# ---- 17: a record crossing a segment boundary ----------------------------------------------
def test_find_damage_counts_a_delete_whose_records_cross_a_segment(env: LocalProvider) -> None:
    from spectral.playbooks.damage import find_damage

    sql(env, "create table big (id int primary key, pad text)")
    sql(env, "insert into big select g, repeat('p', 200) from generate_series(1, 4800) g")
    sql(env, "vacuum big")                 # hint bits set now, not by the DELETE's own scan
    env.backup()
    sql(env, "checkpoint")                 # the DELETE's first touch of each page logs it whole
    lsn = int(sql(env, "select pg_current_wal_insert_lsn() - '0/0'::pg_lsn")[0][0])
    room = (16 << 20) - lsn % (16 << 20)
    if room > 200_000:                     # put the DELETE across the next segment boundary
        sql(env, f"select pg_logical_emit_message(false, 'pad', repeat('x', {room - 150_000}))")
    xid, _ = commit(env, "delete from big")
    with connect(env.local.cluster().conninfo()) as conn:
        found = [d for d in find_damage(env.wal_archive(), conn, "public.big") if d.xid == xid]
    assert found and found[0].rows == 4800
