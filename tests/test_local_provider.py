"""The local provider on real clusters: full and incremental backups, PITR by time, xid
(exclusive), LSN and name, the recoverable window, a corrupted backup refused, a missing WAL
segment reported with the reachable target, an in-place restore undone, PostgreSQL 15."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import _processes_under, local_provider, sql
from spectral.errors import BackupDamaged, CouldNotVerify, RefusedError, UsageError
from spectral.pg.binaries import PgBinaries
from spectral.pg.conn import connect
from spectral.providers.base import BackupKind, Instance, Verification
from spectral.providers.local.environment import LocalEnvironment
from spectral.providers.local.provider import LocalProvider
from spectral.providers.local.recovery import recovery_settings, restore_command
from spectral.providers.local.wal import (
    Segment,
    first_gap,
    format_lsn,
    parse_lsn,
    parse_segment,
    segment_name,
)
from spectral.recovery_target import LatestTarget, TargetKind, target_of


@pytest.fixture
def env(work_dir: Path, bins: PgBinaries) -> Iterator[LocalProvider]:
    with local_provider(work_dir, bins, "ledger") as provider:
        yield provider


def on(inst: Instance, query: str) -> list[tuple]:
    with connect(inst.dsn) as conn:
        return conn.execute(query).fetchall()


def commit_time(p: LocalProvider, note: str) -> tuple[int, datetime]:
    """Insert a row in its own transaction; return its xid and commit time."""
    with connect(p.local.cluster().conninfo(), autocommit=False) as conn:
        conn.execute("insert into ledger values ((select max(id) + 1 from ledger), %s)", (note,))
        xid = conn.execute("select txid_current()").fetchone()[0]  # type: ignore[index]
        conn.commit()
    row = sql(p, f"select pg_xact_commit_timestamp('{xid}'::xid)")[0][0]
    return int(xid), row


# ---- pure parts -------------------------------------------------------------------------------
def test_lsn_and_segment_arithmetic() -> None:
    seg = 16 * 1024 * 1024     # initdb's default; other sizes: test_wal_segment_size.py
    assert parse_lsn("0/3000060") == 0x3000060
    assert format_lsn(0x1_0000_0028) == "1/28"
    assert segment_name(1, 3, seg) == "000000010000000000000003"
    assert segment_name(2, 256, seg) == "000000020000000100000000"
    assert parse_segment("000000020000000100000000", seg) == Segment(2, 256, size=seg)
    assert parse_segment("000000010000000000000005.partial", seg) == \
        Segment(1, 5, True, size=seg)
    assert parse_segment("00000002.history", seg) is None


def test_first_gap_is_timeline_aware() -> None:
    seg = 16 * 1024 * 1024

    def at(tli: int, segno: int) -> Segment:
        return Segment(tli, segno, size=seg)

    segs = [at(1, 3), at(1, 4), at(1, 6)]
    assert first_gap(segs, 3, 1, [], seg) == 5
    assert first_gap([at(1, 3), at(1, 4)], 3, 1, [], seg) is None
    from spectral.providers.local.wal import TimelineSwitch

    # timeline 2 branched in segment 4: segments before come from timeline 1
    segs = [at(1, 3), at(1, 4), at(2, 4), at(2, 5)]
    assert first_gap(segs, 3, 2, [TimelineSwitch(1, 4 * seg + 100)], seg) is None


def test_recovery_settings() -> None:
    conf = recovery_settings(target_of(TargetKind.XID, "1234", exclusive=True),
                             restore_command(Path("/a"), Path("/s"), 16 << 20),
                             pause=False)
    assert conf["recovery_target_xid"] == "1234"
    assert conf["recovery_target_inclusive"] == "off"
    assert conf["recovery_target_action"] == "promote"
    assert "/a/%f" in conf["restore_command"]
    latest = recovery_settings(LatestTarget(), "cp /a/%f %p", pause=False)
    assert not any(k.startswith("recovery_target_") and k != "recovery_target_timeline"
                   for k in latest)


# ---- real clusters ------------------------------------------------------------------------------
def test_full_backup_is_verified_and_restores_latest(env: LocalProvider) -> None:
    b = env.backup()
    assert b.kind is BackupKind.FULL and b.verification is Verification.VERIFIED
    assert (env.repo.backup_dir(b.id) / "backup_manifest").exists()
    sql(env, "insert into ledger values (1000, 'after backup')")
    inst = env.restore(LatestTarget())
    assert on(inst, "select note from ledger where id = 1000") == [("after backup",)]
    assert on(inst, "select pg_is_in_recovery()") == [(False,)]
    window = env.window()
    assert window.earliest_lsn == b.stop_lsn and not window.gaps
    assert parse_lsn(window.latest_lsn or "0/0") > parse_lsn(b.stop_lsn)


def test_incremental_chain_restores(env: LocalProvider) -> None:
    full = env.backup()
    sql(env, "insert into ledger values (2000, 'between')")
    inc = env.backup(incremental=True)
    assert inc.kind is BackupKind.INCREMENTAL and inc.parent == full.id
    sql(env, "insert into ledger values (2001, 'after incremental')")
    inst = env.restore(LatestTarget())
    assert inst.backup_id == inc.id
    assert on(inst, "select id from ledger where id >= 2000 order by id") == [(2000,), (2001,)]


def test_pitr_by_time_lands_between_two_commits(env: LocalProvider) -> None:
    env.backup()
    _, first = commit_time(env, "first")
    time.sleep(1.1)
    _, second = commit_time(env, "second")
    target = first + (second - first) / 2
    env.flush_archive()
    inst = env.restore(target_of(TargetKind.TIME, target.isoformat()))
    notes = [r[0] for r in on(inst, "select note from ledger where note <> 'base'")]
    assert notes == ["first"]
    assert inst.reached and "before commit" in str(inst.reached.stopped)


def test_pitr_by_xid_exclusive_stops_just_before(env: LocalProvider) -> None:
    env.backup()
    with connect(env.local.cluster().conninfo(), autocommit=False) as conn:
        conn.execute("delete from ledger where id <= 50")
        xid = conn.execute("select txid_current()").fetchone()[0]  # type: ignore[index]
        conn.commit()
    sql(env, "insert into ledger values (3000, 'later')")
    env.flush_archive()
    inst = env.restore(target_of(TargetKind.XID, str(xid), exclusive=True))
    assert on(inst, "select count(*) from ledger") == [(100,)]      # the delete is not there
    inclusive = env.restore(target_of(TargetKind.XID, str(xid)))
    assert on(inclusive, "select count(*) from ledger") == [(50,)]  # the delete, not later


def test_pitr_by_lsn_and_by_name(env: LocalProvider) -> None:
    env.backup()
    sql(env, "insert into ledger values (4000, 'a')")
    lsn = sql(env, "select pg_current_wal_insert_lsn()::text")[0][0]
    sql(env, "select pg_create_restore_point('before-b')")
    sql(env, "insert into ledger values (4001, 'b')")
    env.flush_archive()
    by_lsn = env.restore(target_of(TargetKind.LSN, lsn))
    assert on(by_lsn, "select id from ledger where id >= 4000") == [(4000,)]
    by_name = env.restore(target_of(TargetKind.NAME, "before-b"))
    assert on(by_name, "select id from ledger where id >= 4000") == [(4000,)]


def test_target_outside_the_window_gives_the_window(env: LocalProvider) -> None:
    env.backup()
    env.flush_archive()
    with pytest.raises(UsageError, match=r"outside the recoverable window: .* to "):
        env.restore(target_of(TargetKind.TIME, "2001-01-01T00:00:00Z"))
    with pytest.raises(UsageError, match="transaction 999999 is not in the WAL archive"):
        env.restore(target_of(TargetKind.XID, "999999"))


def test_no_backup_cannot_restore(env: LocalProvider) -> None:
    with pytest.raises(CouldNotVerify, match="no verified base backup"):
        env.restore(LatestTarget())


def test_corrupted_backup_is_refused(env: LocalProvider) -> None:
    older = env.backup()
    sql(env, "insert into ledger values (7001, 'after the older backup')")
    b = env.backup()
    victim = max((p for p in (env.repo.backup_dir(b.id) / "base").rglob("*") if p.is_file()),
                 key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    with pytest.raises(BackupDamaged, match=f"backup {b.id} is damaged") as exc:
        env.restore(LatestTarget())
    name = str(victim.relative_to(env.repo.backup_dir(b.id)))
    assert exc.value.problems == [f'checksum mismatch for file "{name}"']
    assert exc.value.exit_code == 1
    assert env.instances() == []
    # proven damaged: marked so in the catalog, never planned again; the latest point is
    # restored from the older backup and the WAL
    assert [x.verification for x in env.backups() if x.id == b.id] == [Verification.FAILED]
    inst = env.restore(LatestTarget())
    assert inst.backup_id == older.id
    with connect(inst.dsn) as conn:
        assert conn.execute("select count(*) from ledger where id = 7001").fetchone() == (1,)
    env.teardown(inst.id)


def test_missing_wal_segment_is_reported_with_the_reachable_target(env: LocalProvider) -> None:
    env.backup()
    sql(env, "insert into ledger values (5000, 'before gap')")
    env.flush_archive()
    sql(env, "insert into ledger values (5001, 'in the lost segment')")
    lost = env.flush_archive()
    sql(env, "insert into ledger values (5002, 'after gap')")
    env.flush_archive()
    assert lost is not None
    (env.repo.archive / lost).unlink()
    window = env.window()
    assert window.gaps and window.gaps[0].missing_from == lost
    with pytest.raises(CouldNotVerify, match=f"WAL segment {lost} is missing") as exc:
        env.restore(target_of(TargetKind.TIME, datetime.now(UTC).isoformat()))
    reachable = (exc.value.hint or "").split("--target-lsn ")[-1]
    # defect 2: --latest replayed up to the hole, promoted and lost 5002 with exit 0
    with pytest.raises(CouldNotVerify, match=f"WAL segment {lost} is missing"):
        env.restore(LatestTarget())
    env.local.down()
    with pytest.raises(CouldNotVerify, match=f"WAL segment {lost} is missing"):
        env.restore(LatestTarget())
    inst = env.restore(target_of(TargetKind.LSN, reachable))   # the point it names
    assert on(inst, "select max(id) from ledger") == [(5000,)]


def test_in_place_restore_can_be_undone(env: LocalProvider) -> None:
    env.backup()
    with pytest.raises(RefusedError, match="needs --yes"):
        env.restore_in_place(LatestTarget(), confirmed=False)
    _, before_drop = commit_time(env, "keep")
    time.sleep(1.1)
    sql(env, "drop table ledger")
    env.flush_archive()
    done = env.restore_in_place(target_of(TargetKind.TIME, before_drop.isoformat()),
                                confirmed=True)
    assert done.previous is not None and Path(done.previous).is_dir()
    assert sql(env, "select count(*) from ledger") == [(101,)]
    # the in-place restore's recovery ran without the WAL summarizer (hot standby off, see
    # inplace.py): an incremental is refused with the way out, then a full one goes
    with pytest.raises(UsageError, match="needs WAL summaries") as first:
        env.backup(incremental=True)
    assert "full backup first" in (first.value.hint or "")
    assert env.backup().parent is None
    env.undo_in_place()
    assert sql(env, "select to_regclass('ledger')") == [(None,)]   # back to after the drop
    # the archive holds the undone restore's timeline (and a backup of it); later backups and
    # restores to the latest point must follow the live database, not that abandoned timeline
    sql(env, "create table after_undo (id int)")
    sql(env, "insert into after_undo values (1)")
    # the undo's recovery ran without the WAL summarizer (see settle.settle): an incremental
    # is refused with the way out, never built on the undone timeline's backup
    with pytest.raises(UsageError, match="needs WAL summaries") as exc:
        env.backup(incremental=True)
    assert "full backup first" in (exc.value.hint or "")
    assert env.backup().timeline > 2                      # a full one, on the live timeline
    env.flush_archive()
    inst = env.restore(LatestTarget())
    assert on(inst, "select to_regclass('ledger')::text, to_regclass('after_undo')::text") \
        == [(None, "after_undo")]


@pytest.mark.parametrize("stage", ["copy", "replay"])
def test_interrupted_restore_leaves_nothing_running(env: LocalProvider, work_dir: Path,
                                                    stage: str) -> None:
    env.backup()
    sql(env, "insert into ledger values (6000, 'x')")
    source_before = sql(env, "select count(*) from ledger")

    def interrupt(at: str, done: int, total: int) -> None:
        if at == stage:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        env.restore(LatestTarget(), progress=interrupt)
    assert env.instances() == []
    assert list((work_dir / "state" / "instances").iterdir()) == []
    assert [p for p in _processes_under(work_dir) if "/instances/" in p] == []
    assert sql(env, "select count(*) from ledger") == source_before   # source untouched


def test_postgres_15_backup_and_restore(work_dir: Path, pg15: PgBinaries) -> None:
    local = LocalEnvironment("pg15", work_dir / "state15", pg15)
    local.up()
    provider = LocalProvider(local)
    try:
        with connect(local.cluster().conninfo()) as conn:
            conn.execute("create table t (x int)")
        b = provider.backup()
        assert b.server_version.startswith("15.")
        with connect(local.cluster().conninfo()) as conn:
            conn.execute("insert into t values (15)")
        with pytest.raises(UsageError, match="PostgreSQL 17 or newer"):
            provider.backup(incremental=True)
        inst = provider.restore(LatestTarget())
        assert on(inst, "select x from t") == [(15,)]
        # the undo lifecycle on 15 too: rewind, undo, write, and --latest follows the live one
        provider.restore_in_place(target_of(TargetKind.LSN, b.stop_lsn), confirmed=True)
        assert provider.undo_in_place().timeline == 3
        with connect(local.cluster().conninfo()) as conn:
            conn.execute("insert into t values (16)")
        inst = provider.restore(LatestTarget())
        assert on(inst, "select x from t order by x") == [(15,), (16,)]
    finally:
        for inst in provider.instances():
            provider.teardown(inst.id)
        local.down()
    assert _processes_under(work_dir) == []


def test_full_disk_fails_cleanly_and_keeps_the_catalog(env: LocalProvider) -> None:
    """The repository's base/ on a 12 MB file system: the backup fails with the reason, leaves no
    partial copy and no catalog entry, and the next backup (with room) works."""
    import subprocess

    from spectral.errors import CommandError
    from spectral.pg.osuser import server_identity

    first = env.backup()
    base = env.repo.base
    ident = server_identity()
    opts = "size=12m,mode=0750" + (f",uid={ident.uid},gid={ident.gid}" if ident else "")
    saved = base.with_name("base.saved")
    base.rename(saved)
    base.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(base)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        base.rmdir()
        saved.rename(base)
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.strip()}")
    try:
        with pytest.raises(CommandError, match="No space left on device"):
            env.backup()
        assert list(base.iterdir()) == []                  # no partial copy left behind
        assert [b.id for b in env.backups()] == [first.id]  # the catalog as it was
    finally:
        subprocess.run(["umount", str(base)], check=True)
        base.rmdir()
        saved.rename(base)
    second = env.backup()
    assert [b.id for b in env.backups()] == [first.id, second.id]


def test_after_an_in_place_restore_the_rewound_history_is_not_read(env: LocalProvider) -> None:
    """After rewinding to just before a DELETE, the archive still holds the old timeline with
    that DELETE, and the live timeline reuses its transaction ids: find-damage must report only
    what happened on the live timeline, and --target-xid must mean the live transaction."""
    from spectral.playbooks.damage import find_damage

    env.backup()
    with connect(env.local.cluster().conninfo(), autocommit=False) as conn:
        conn.execute("delete from ledger where id <= 10")
        bad = conn.execute("select txid_current()").fetchone()[0]  # type: ignore[index]
        conn.commit()
    for i in range(1, 6):                    # later transactions on the timeline to be rewound
        sql(env, f"insert into ledger values ({1000 + i}, 'rewound')")
    env.restore_in_place(target_of(TargetKind.XID, str(bad), exclusive=True),
                         confirmed=True)
    assert sql(env, "select count(*) from ledger") == [(100,)]
    with connect(env.local.cluster().conninfo(), autocommit=False) as conn:
        conn.execute("delete from ledger where id = 50")
        again = conn.execute("select txid_current()").fetchone()[0]  # type: ignore[index]
        conn.commit()
    assert bad <= again <= bad + 5           # an xid the rewound timeline used too
    with connect(env.local.cluster().conninfo()) as conn:
        found = find_damage(env.wal_archive(), conn, "public.ledger", ops={"delete"})
    assert [(d.xid, d.rows) for d in found] == [(again, 1)]
    inst = env.restore(target_of(TargetKind.XID, str(again), exclusive=True))
    assert on(inst, "select count(*) from ledger") == [(100,)]


def test_local_up_and_down_wait_for_a_command_starting_the_server(env: LocalProvider) -> None:
    """`local up` and `local down` take the lock a command's own start and stop take. Racing a
    command that starts the server for itself (a `dr wal stream` just launched), they started a
    second postmaster on the data directory ("lock file already exists"), or left the server
    to be stopped when that command ended (both found by the lifecycle's restart under a
    stream, under load)."""
    import threading

    from spectral.durable import file_lock

    local = env.local
    done: dict[str, bool] = {}
    with file_lock(local.paths.state_dir / "cluster-start.lock"):   # a command mid-start
        down = threading.Thread(target=lambda: done.setdefault("down", local.down()))
        down.start()
        down.join(1.5)
        assert down.is_alive(), "local down did not wait for the command's start"
        assert local.cluster().is_running()
    down.join(60)
    assert done == {"down": True} and not local.cluster().is_running()

    with local.session():          # a command starts the server for itself...
        local.up()                 # ...and the operator brings it up meanwhile
    assert local.cluster().is_running(), "the command's end stopped a server `local up` kept"
