"""Regression tests for issue 13's defects: each was reproduced on the code before it and
fails there. Library-level where that reaches the defect, the real command line where the
defect was in what a user sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import _processes_under, local_provider, spectral, sql
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
    assert inst.reached.get("resolved")


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
                             tmp_path, tmp_path, pause=False)
    assert conf["recovery_target_time"] == "2026-11-26 21:30:00.000000+00"
    log = ('2026-11-26 LOG:  invalid value for parameter "recovery_target_time": "x"\n'
           '2026-11-26 FATAL:  configuration file "/d/spectral.conf" contains errors\n')
    assert recovery_failure(log).startswith('invalid value for parameter "recovery_target_time"')


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

    recorded = [e.data["summary"] for e in Ledger(env.local.paths.state_dir / "evidence")
                .entries() if e.kind is EntryKind.RESTORE]
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


# ---- 20: column grants --------------------------------------------------------------------
def test_blast_radius_names_column_grants(make_cluster) -> None:  # type: ignore[no-untyped-def]
    from spectral.playbooks.blast import blast_radius

    c = make_cluster()
    with c.connect() as conn:
        conn.execute("create role leaked")
        conn.execute("create table users (id int, display_name text, email text)")
        conn.execute("grant update (display_name) on users to leaked")
        r = blast_radius(conn, "leaked")
    assert r.columns == {"public.users": ["UPDATE (display_name)"]}


# ---- 13: tampered or malformed corpus exports -----------------------------------------------
def test_import_refuses_a_manifest_whose_corpus_checksum_is_stale(tmp_path: Path) -> None:
    import hashlib

    from spectral.errors import CheckFailed
    from spectral.rules.importer import read_folder

    folder = tmp_path / "acme"
    (folder / "rules" / "c" / "0").mkdir(parents=True)
    rule = folder / "rules" / "c" / "0" / "k.json"
    rule.write_text("{}\n")
    (folder / "corpora.json").write_text('{"corpora": []}\n')
    files = {rel: hashlib.sha256((folder / rel).read_bytes()).hexdigest()
             for rel in ("corpora.json", "rules/c/0/k.json")}
    corpus = hashlib.sha256("".join(f"{h}  {r}\n" for r, h in sorted(files.items()))
                            .encode()).hexdigest()
    from spectral.rules.layout import FORMAT, VERSION

    def manifest(f: dict[str, str], c: str) -> None:
        (folder / "manifest.json").write_text(json.dumps(
            {"format": FORMAT, "version": VERSION, "files": f, "corpus_sha256": c}))

    rule.write_text('{"tampered": true}\n')            # the file and its manifest line edited
    manifest({**files, "rules/c/0/k.json": hashlib.sha256(rule.read_bytes()).hexdigest()},
             corpus)                                    # ... corpus_sha256 left stale
    with pytest.raises(CheckFailed, match="corpus_sha256"):
        read_folder(tmp_path, "acme")
    rule.unlink()
    rule.mkdir()                                        # a directory where a file should be
    manifest(files, corpus)
    with pytest.raises(CheckFailed, match="not a file"):
        read_folder(tmp_path, "acme")


# ---- 16: the stream resumes on the server's timeline --------------------------------------
def test_stream_segments_of_an_abandoned_timeline_move_aside(env: LocalProvider) -> None:
    from spectral.providers.local.stream import align_stream_dir

    stream = env.repo.stream
    stream.mkdir(parents=True, exist_ok=True)
    (stream / "00000006000000000000000F.partial").write_bytes(b"")
    (stream / "000000010000000000000001").write_bytes(b"")
    moved = align_stream_dir(env.local.cluster(), stream)
    assert moved == ["00000006000000000000000F.partial"]
    assert (stream / "abandoned" / "00000006000000000000000F.partial").exists()
    assert (stream / "000000010000000000000001").exists()


# ---- 6, 8: two drills at once; SIGKILL during a backup --------------------------------------
def test_operation_lock_waits_or_refuses(env: LocalProvider) -> None:
    from spectral import envlock

    state = env.local.paths.state_dir
    code = ("import sys, time; from pathlib import Path; from spectral.envlock import "
            "operation_lock\nwith operation_lock(Path(sys.argv[1]), 'drill'):\n"
            "    print('held', flush=True); time.sleep(3)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(state)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RefusedError, match=f"pid {holder.pid} \\(drill\\)"), \
                envlock.operation_lock(state, "backup", wait=False):
            pass
        said: list[str] = []
        started = time.monotonic()
        with envlock.operation_lock(state, "backup", wait=True, report=said.append):
            assert time.monotonic() - started > 0.5
        assert said and f"pid {holder.pid}" in said[0]
    finally:
        holder.wait(timeout=30)


def test_orphan_clean_up_spares_an_instance_whose_owner_lives(env: LocalProvider) -> None:
    from spectral.providers.local.instances import process_start

    owner = subprocess.Popen(["sleep", "60"])         # another drill, still restoring
    try:
        home = env.local.paths.instances_dir / "r20260101T000000001"
        home.mkdir(parents=True)
        (home / "instance.json").write_text(json.dumps(
            {"id": home.name, "state": "restoring", "owner_pid": owner.pid,
             "owner_start": process_start(owner.pid)}))
        young = env.local.paths.instances_dir / "r20260101T000000002"
        young.mkdir()                                   # not even registered yet
        assert env.orphans() == []
    finally:
        owner.kill()
        owner.wait()
    assert env.orphans() == [home.name]                # its owner is gone now


def test_sigkill_during_backup_leaves_no_helper_and_no_partial(work_dir: Path) -> None:
    import signal

    from conftest import SPECTRAL

    assert spectral("demo", cwd=work_dir).returncode == 0
    assert spectral("local", "up", cwd=work_dir).returncode == 0
    try:
        dsn = json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)["dsn"]
        with connect(dsn) as conn:   # enough data that the backup is still running when killed
            conn.execute("create table filler as select g, repeat('f', 500) pad "
                         "from generate_series(1, 400000) g")
        proc = subprocess.Popen([SPECTRAL, "dr", "backup"], cwd=work_dir,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = work_dir / ".spectral" / "local" / "backups" / "base"
        deadline = time.monotonic() + 60
        while not list(base.glob("*.partial")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 20   # a helper in an fsync dies when the call returns
        while (helpers := [p for p in _processes_under(work_dir) if "pg_basebackup" in p]) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert helpers == []

        def senders() -> int:   # the server notices the closed connections within moments
            with connect(dsn) as conn:
                row = conn.execute("select count(*) from pg_stat_replication "
                                   "where application_name = 'pg_basebackup'").fetchone()
            return int(row[0]) if row else 0

        deadline = time.monotonic() + 30
        while senders() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert senders() == 0
        assert spectral("dr", "backup", cwd=work_dir).returncode == 0
        assert list(base.glob("*.partial")) == []
    finally:
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


def test_two_drills_at_once_both_pass(work_dir: Path) -> None:
    from conftest import SPECTRAL

    assert spectral("demo", cwd=work_dir).returncode == 0     # seeded, backed up, stopped
    env = {**os.environ, "COLUMNS": "200"}
    runs = [subprocess.Popen([SPECTRAL, "dr", "drill", "functional"], cwd=work_dir, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outs = [r.communicate(timeout=600) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outs
    # one waited for the other (named by pid once its holder file is written, else generically)
    assert any("to finish with this environment" in err for _out, err in outs), outs
    blocker = subprocess.Popen([SPECTRAL, "dr", "drill", "functional"], cwd=work_dir, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        holder = work_dir / ".spectral" / "local" / "operation.holder"
        deadline = time.monotonic() + 60
        while not holder.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        res = spectral("--no-wait", "dr", "backup", cwd=work_dir)
        assert res.returncode == 2 and "not waiting" in res.stderr
    finally:
        assert blocker.wait(timeout=600) == 0
    # 11: a drill to "now" follows the same rule as dr restore (no commit after it: the state
    # after the archive's last record), and passes
    assert spectral("dr", "snapshot", cwd=work_dir).returncode == 0
    time.sleep(1.1)
    now = datetime.now(UTC).isoformat()
    res = spectral("dr", "drill", "functional", "--target-time", now, "--json", cwd=work_dir)
    assert res.returncode == 0, res.stdout + res.stderr
    assert _processes_under(work_dir) == []


def test_history_with_a_switch_before_its_parents_branch_point() -> None:
    """Found by the lifecycle test: an in-place restore to a commit older than the last undo's
    branch point writes a history whose last switch is lower than an earlier one; PostgreSQL
    reads everything from that point on the newest timeline, and so must the window and the
    choice of backup (a backup after that point on timeline 1 is not on the lineage)."""
    from spectral.providers.local.wal import TimelineSwitch, descends, effective

    history = effective([TimelineSwitch(1, 0x9000000), TimelineSwitch(3, 0x5000000)])
    assert history == [TimelineSwitch(1, 0x5000000), TimelineSwitch(3, 0x5000000)]
    assert descends(1, 0x4000000, 4, history)
    assert not descends(1, 0x6000080, 4, history)


def test_heap_offsets_are_read_in_both_pg_waldump_formats() -> None:
    """Found by the lifecycle test on PostgreSQL 15: its pg_waldump prints "off 7" where 16+
    print "off: 7"; the offsets read as 0, and salvage put back nothing while saying 0
    conflicts and exiting 0."""
    from spectral.playbooks.damage import _parse, _Scan

    rel = "blkref #0: rel 1663/5/16384 blk 2"
    lines = [
        f"rmgr: Heap        len (rec/tot):     54/    54, tx:        729, lsn: 0/01763AC8, "
        f"prev 0/01763AA0, desc: DELETE off 7 flags 0x00 KEYS_UPDATED , {rel}",
        f"rmgr: Heap        len (rec/tot):     72/    72, tx:        728, lsn: 0/01763A58, "
        f"prev 0/01763A10, desc: HOT_UPDATE off 5 xmax 728 flags 0x60 ; new off 13 xmax 0, {rel}",
        f"rmgr: Heap        len (rec/tot):     54/    54, tx:        730, lsn: 0/01763B00, "
        f"prev 0/01763AC8, desc: DELETE xmax: 730, off: 9, infobits: [KEYS_UPDATED], "
        f"flags: 0x00, {rel}",
        f"rmgr: Heap        len (rec/tot):     72/    72, tx:        731, lsn: 0/01763B40, "
        f"prev 0/01763B00, desc: HOT_UPDATE old_xmax: 731, old_off: 4, old_infobits: [], "
        f"flags: 0x10, new_xmax: 0, new_off: 14, {rel}",
    ]
    scan = _Scan()
    _parse("\n".join(lines), scan)
    assert scan.heap[729] == [("delete", "1663/5/16384", 2, 7)]
    assert scan.heap[728] == [("update", "1663/5/16384", 2, 5)]
    assert scan.heap[730] == [("delete", "1663/5/16384", 2, 9)]
    assert scan.heap[731] == [("update", "1663/5/16384", 2, 4)]
