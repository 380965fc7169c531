"""Regression tests for issue 27's defects 2 and 4: WAL that cannot be read (a damaged or
truncated archived segment) is a gap named by segment, never a silently shorter restore; and a
crashed source's unarchived tail is either used or named, never lost with exit 0."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import SYSTEM_PG15, _processes_under, local_provider, notes_environment, spectral, sql
from spectral.errors import CouldNotVerify
from spectral.pg.binaries import PgBinaries
from spectral.pg.conn import connect
from spectral.providers.local.provider import LocalProvider
from spectral.providers.local.wal import parse_lsn
from spectral.recovery_target import LatestTarget, TargetKind, target_of
from spectral.runner import run
from test_pgbackrest import Env, _toml, ids_in, repo_files, segments_after
from test_pgbackrest import commit as pgb_commit

SEG = 16 * 1024 * 1024


@pytest.fixture
def env(work_dir: Path, bins: PgBinaries) -> Iterator[LocalProvider]:
    with local_provider(work_dir, bins, "items") as provider:
        yield provider


def on(dsn: str, query: str) -> list[tuple]:
    with connect(dsn) as conn:
        return conn.execute(query).fetchall()


def commit(p: LocalProvider, row: int) -> tuple[int, datetime]:
    """One row in its own transaction: its xid and commit time."""
    with connect(p.local.cluster().conninfo(), autocommit=False) as conn:
        conn.execute("insert into items values (%s, 'x')", (row,))
        xid = int(conn.execute("select txid_current()").fetchone()[0])  # type: ignore[index]
        conn.commit()
    return xid, sql(p, f"select pg_xact_commit_timestamp('{xid}'::xid)")[0][0]


def segment_with(p: LocalProvider, row: int) -> tuple[str, datetime]:
    """A segment holding one commit (the row), switched and archived: its name, commit time."""
    _, at = commit(p, row)
    name = p.flush_archive()
    assert name is not None
    return name, at


def records(bins: PgBinaries, path: Path) -> list[tuple[int, str]]:
    """(offset in the segment, pg_waldump's line) of every record of one archived segment."""
    out = run([bins.path("pg_waldump"), str(path)], timeout=60, check=False).stdout
    base = None
    found = []
    for line in out.splitlines():
        if "lsn: " not in line:
            continue
        lsn = parse_lsn(line.split("lsn: ", 1)[1].split(",", 1)[0])
        base = base if base is not None else lsn - lsn % SEG
        found.append((lsn - base, line))
    return found


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def ids(dsn: str) -> list[int]:
    return [r[0] for r in on(dsn, "select id from items where id > 1000 order by id")]


# ---- 2: a damaged archived segment is a gap ---------------------------------------------------
def _damage_offsets(bins: PgBinaries, path: Path) -> dict[str, int]:
    """Offsets inside records of the segment: its first record (offset 80, the issue's), the
    middle of the commit record, and inside its last record (the SWITCH)."""
    recs = records(bins, path)
    commit_at = next(off for off, line in recs if "desc: COMMIT" in line)
    return {"first-record": 80, "commit": commit_at + 30, "switch": recs[-1][0] + 10}


@pytest.mark.parametrize("where", ["first-record", "commit", "switch", "truncated",
                                   "system-identifier"])
def test_a_damaged_segment_is_a_gap_and_targets_before_it_restore_exactly(
        env: LocalProvider, bins: PgBinaries, where: str) -> None:
    env.backup()
    xid, _ = commit(env, 1001)
    time.sleep(0.3)
    between = datetime.now(UTC)
    time.sleep(0.3)
    readable, _ = segment_with(env, 1002)
    time.sleep(0.3)
    in_readable = datetime.now(UTC)
    time.sleep(0.3)
    xid_in_damaged, _ = commit(env, 1003)
    damaged = env.flush_archive()
    assert damaged is not None
    _, after = segment_with(env, 1004)
    segment_with(env, 1005)
    path = env.repo.archive / damaged
    if where == "truncated":
        with path.open("r+b") as f:
            f.truncate(SEG // 2)
    elif where == "system-identifier":   # the first page's long header: pg_waldump's blind spot
        overwrite(path, 24, b"\xa5" * 8)  # (adversary round, session 10: F6)
    else:
        overwrite(path, _damage_offsets(bins, path)[where], b"\xa5" * 16)

    window = env.window()
    assert [g.missing_from for g in window.gaps] == [damaged], window.to_json()
    assert "damaged" in window.gaps[0].problem
    for target in (LatestTarget(), target_of(TargetKind.TIME, after.isoformat())):
        with pytest.raises(CouldNotVerify, match=f"WAL segment {damaged} is damaged"):
            env.restore(target)
    inst = env.restore(target_of(TargetKind.TIME, between.isoformat()))
    assert ids(inst.dsn) == [1001]
    inst = env.restore(target_of(TargetKind.XID, str(xid)))
    assert ids(inst.dsn) == [1001]
    if where == "switch":    # the damaged segment's own commit is before the damage
        inst = env.restore(target_of(TargetKind.TIME, in_readable.isoformat()))
        assert ids(inst.dsn) == [1001, 1002]
        inst = env.restore(target_of(TargetKind.XID, str(xid_in_damaged)))
        assert ids(inst.dsn) == [1001, 1002, 1003]
    else:    # what committed after 1002 and before the target is unknown: refused
        with pytest.raises(CouldNotVerify, match=f"WAL segment {damaged} is damaged"):
            env.restore(target_of(TargetKind.TIME, in_readable.isoformat()))
    assert readable != damaged


@pytest.mark.server
def test_cli_names_the_damaged_segment_and_never_rewinds_the_live_database(
        work_dir: Path, bins: PgBinaries) -> None:
    """Damage in the middle of a record (not at a segment's start): `dr backups` names it, a
    restore to the latest point and an in-place one are refused (exit 3) with the last reachable
    point, and the live database keeps every row."""
    with notes_environment(work_dir) as environment:
        p = environment.provider
        assert isinstance(p, LocalProvider)
        dsn = p.local.cluster().conninfo()
        for row in range(2, 6):
            with connect(dsn) as conn:
                conn.execute("insert into core.notes values (%s, 'later')", (row,))
            p.flush_archive()
        segs = sorted(s for s in p.repo.wal_files() if not s.partial)
        damaged = segs[-3].name
        recs = records(bins, p.repo.archive / damaged)
        heap = next(off for off, line in recs if "rmgr: Heap" in line and "INSERT" in line)
        overwrite(p.repo.archive / damaged, heap + 26, b"\x00\x01\x02\x03")

        res = spectral("--json", "dr", "backups", cwd=work_dir)
        assert res.returncode == 0, res.stderr
        gaps = json.loads(res.stdout)["window"]["gaps"]
        assert [g["missing_from"] for g in gaps] == [damaged], gaps
        res = spectral("dr", "backups", cwd=work_dir)
        assert f"segment {damaged} is damaged" in res.stdout, res.stdout
        res = spectral("dr", "restore", "--latest", cwd=work_dir)
        assert res.returncode == 3 and damaged in res.stderr, res.stderr
        assert "--target-lsn" in res.stderr, res.stderr
        res = spectral("dr", "restore", "--in-place", "--latest", "--yes", cwd=work_dir)
        assert res.returncode == 3 and damaged in res.stderr, res.stderr
        with connect(p.local.cluster().conninfo()) as conn:
            rows = conn.execute("select count(*) from core.notes").fetchone()
        assert rows == (5,)
        res = spectral("dr", "drill", "functional", cwd=work_dir)
        assert res.returncode == 3 and damaged in res.stdout + res.stderr, res.stdout + res.stderr


# ---- 2, pgBackRest: a damaged segment, compressed or not ---------------------------------------
@pytest.fixture(params=["none", "lz4"])
def pgb_plain(request: pytest.FixtureRequest, work_dir: Path) -> Iterator[tuple[Env, str]]:
    """A pgBackRest environment on a POSIX repository with the given compress_type."""
    if shutil.which("pgbackrest") is None or not (SYSTEM_PG15 / "postgres").exists():
        pytest.skip("needs pgbackrest and Debian's PostgreSQL 15")
    text = _toml(work_dir / "repo", None).replace(
        'stanza = "spectral-test"\n', f'stanza = "spectral-test"\ncompress_type = '
        f'"{request.param}"\n')
    (work_dir / "spectral.toml").write_text(text)
    e = Env(work_dir, {}, [], None, [])
    try:
        e.run("local", "up")
        e.sql("create schema app; create table app.ledger (id int primary key, note text); "
              "insert into app.ledger select g, 'base' from generate_series(1, 100) g")
        yield e, request.param
    finally:
        spectral("dr", "teardown", "--all", cwd=work_dir)
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


def test_pgbackrest_damaged_segment_is_a_gap_and_what_is_before_it_restores(
        pgb_plain: tuple[Env, str]) -> None:
    pgb, compress = pgb_plain
    pgb.run("dr", "backup", "--json")
    xid, _ = pgb_commit(pgb, 101, "before")
    names = segments_after(pgb, 4)          # rows 200..203, one segment each
    damaged = names[1]
    key = next(k for k, _ in repo_files(pgb, "archive/spectral-test")
               if k.rsplit("/", 1)[-1].startswith(damaged + "-"))
    path = pgb.dir / "repo" / key
    intact = path.read_bytes()
    overwrite(path, 80 if compress == "lz4" else 0x60, b"\xa5" * 16)

    window = pgb.run("dr", "backups", "--json")["window"]
    assert [g["missing_from"] for g in window["gaps"]] == [damaged], window
    err = pgb.run("dr", "restore", "--latest", expect=3)
    assert f"WAL segment {damaged} is damaged" in err, err
    inst = pgb.run("dr", "restore", "--target-xid", str(xid), "--json")
    assert ids_in(pgb, inst) == list(range(1, 102))
    pgb.run("dr", "teardown", inst["id"])
    inst = pgb.run("dr", "restore", "--target-lsn", window["intervals"][0]["end_lsn"], "--json")
    assert ids_in(pgb, inst) == [*range(1, 102), 200]
    pgb.run("dr", "teardown", inst["id"])
    path.write_bytes(intact)       # repaired: the local copy read before is not trusted
    assert pgb.run("dr", "backups", "--json")["window"]["gaps"] == []
    inst = pgb.run("dr", "restore", "--latest", "--json")
    assert ids_in(pgb, inst) == [*range(1, 102), 200, 201, 202, 203]


# ---- 4: a crashed source's unarchived tail ------------------------------------------------------
def kill_postmaster(data_dir: Path) -> None:
    """kill -9 of a source's postmaster (its pid from postmaster.pid, checked in /proc)."""
    pid = int((data_dir / "postmaster.pid").read_text().split()[0])
    assert "postgres" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}/cmdline").exists() and Path(f"/proc/{pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline     # a zombie has no command line
        time.sleep(0.05)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)   # reaped when this process started it (else init does)


def crash(p: LocalProvider) -> None:
    kill_postmaster(p.local.paths.data_dir)
    assert not p.local.cluster().is_running()


def test_a_crashed_source_keeps_its_unarchived_commits(env: LocalProvider) -> None:
    env.backup()
    segment_with(env, 1001)
    time.sleep(0.3)
    _, last = commit(env, 1002)            # only in the source's pg_wal
    crash(env)
    inst = env.restore(target_of(TargetKind.TIME, last.isoformat()))
    assert ids(inst.dsn) == [1001, 1002]
    assert not env.local.cluster().is_running()     # left as it was found
    _, later = commit_after_up(env, 1003)
    crash(env)
    inst = env.restore(LatestTarget())
    assert ids(inst.dsn) == [1001, 1002, 1003]
    assert later <= datetime.now(UTC)
    commit_after_up(env, 1004)
    env.local.down()             # a clean stop does not archive the segment being written
    inst = env.restore(LatestTarget())
    assert ids(inst.dsn) == [1001, 1002, 1003, 1004]


def commit_after_up(p: LocalProvider, row: int) -> tuple[int, datetime]:
    p.local.up()
    return commit(p, row)


def test_a_crashed_source_that_cannot_start_is_a_named_gap(env: LocalProvider) -> None:
    """When the server cannot be started to archive its WAL, the tail is a gap at the window's
    end: the latest point and times after the last archived commit are refused, naming the
    segment; points the archive holds still restore."""
    env.backup()
    commit(env, 1001)
    time.sleep(0.3)
    archived = datetime.now(UTC)
    time.sleep(0.3)
    segment_with(env, 1002)
    commit(env, 1003)
    crash(env)
    conf = env.local.paths.data_dir / "postgresql.conf"
    text = conf.read_text()
    conf.write_text(text + "\nshared_buffers = 'not a size'\n")      # it will not start
    try:
        window = env.window()
        assert window.gaps and "pg_wal" in window.gaps[-1].problem, window.to_json()
        tail = window.gaps[-1].missing_from
        for target in (LatestTarget(), target_of(TargetKind.TIME, datetime.now(UTC).isoformat())):
            with pytest.raises(CouldNotVerify, match=f"WAL segment {tail} is only in the stopped"):
                env.restore(target)
        inst = env.restore(target_of(TargetKind.TIME, archived.isoformat()))
        assert ids(inst.dsn) == [1001]
    finally:
        conf.write_text(text)


def test_a_crash_with_archiving_stuck_before_the_last_backup_refuses_the_latest_point(
        env: LocalProvider) -> None:
    """Found by the long profile (session 10, PostgreSQL 15): archiving stuck (there, a segment
    of a reused timeline id the archive already held) while backups, which carry their own WAL,
    still succeed. The last backup's end is then the archive's end, and the crashed source's
    unarchived tail starts exactly there; the tail was not taken for a hole after the last
    interval, and `--latest` restored the backup's point without the last commit, exit 0."""
    nowhere = env.local.paths.state_dir / "nowhere"     # archiving fails from here on
    sql(env, f"alter system set basic_archive.archive_directory = '{nowhere}'")
    sql(env, "select pg_reload_conf()")
    env.backup()                           # carries its own WAL: it succeeds
    commit(env, 1002)                      # only in the source's pg_wal
    crash(env)
    conf = env.local.paths.data_dir / "postgresql.conf"
    text = conf.read_text()
    conf.write_text(text + "\nshared_buffers = 'not a size'\n")      # it will not start
    try:
        window = env.window()
        assert window.gaps and "pg_wal" in window.gaps[-1].problem, window.to_json()
        assert window.gaps[-1].from_lsn == window.intervals[-1].end_lsn, window.to_json()
        with pytest.raises(CouldNotVerify, match="is only in the stopped"):
            env.restore(LatestTarget())
    finally:
        conf.write_text(text)


@pytest.mark.server
def test_cli_restores_after_a_crash_hold_the_last_commit(work_dir: Path) -> None:
    """The issue's steps: a commit still only in pg_wal, kill -9 of the postmaster, then
    `dr restore --target-time` after that commit, `--latest`, and `--in-place --latest`."""
    with notes_environment(work_dir) as environment:
        p = environment.provider
        assert isinstance(p, LocalProvider)
        with connect(p.local.cluster().conninfo()) as conn:
            conn.execute("insert into core.notes values (2, 'only in pg_wal')")
        time.sleep(0.2)
        after = datetime.now(UTC).isoformat()
        kill_postmaster(p.local.paths.data_dir)
        for args in (("--target-time", after), ("--latest",)):
            res = spectral("--json", "dr", "restore", *args, cwd=work_dir)
            assert res.returncode == 0, res.stderr + p.local.paths.log_file.read_text()[-3000:]
            inst = json.loads(res.stdout)
            assert on(inst["dsn"], "select id from core.notes order by id") == [(1,), (2,)]
            spectral("dr", "teardown", inst["id"], cwd=work_dir)
        p.local.up()
        with connect(p.local.cluster().conninfo()) as conn:
            conn.execute("insert into core.notes values (3, 'only in pg_wal')")
        kill_postmaster(p.local.paths.data_dir)
        res = spectral("dr", "restore", "--in-place", "--latest", "--yes", cwd=work_dir)
        assert res.returncode == 0, res.stderr + p.local.paths.log_file.read_text()[-3000:]
        p.local.up()
        with connect(p.local.cluster().conninfo()) as conn:
            rows = conn.execute("select id from core.notes order by id").fetchall()
        assert rows == [(1,), (2,), (3,)]


def test_pgbackrest_restore_after_a_crash_holds_the_last_commit(
        pgb_plain: tuple[Env, str]) -> None:
    pgb, _ = pgb_plain
    pgb.run("dr", "backup", "--json")
    segments_after(pgb, 1)
    pgb_commit(pgb, 300, "only in pg_wal")
    data = Path(pgb.run("local", "status", "--json")["data_dir"])
    kill_postmaster(data)
    inst = pgb.run("dr", "restore", "--latest", "--json")
    assert ids_in(pgb, inst)[-2:] == [200, 300]


def test_damage_at_random_offsets_of_full_and_switched_segments(env: LocalProvider,
                                                                bins: PgBinaries) -> None:
    """16 bytes changed at random offsets: inside a segment full of records it is always a gap
    named by that segment; after a segment's SWITCH record (bytes recovery never reads) the
    window is whole and the latest point still restores every row."""
    env.backup()
    sql(env, "insert into items select g, repeat('x', 200) from generate_series(2000, 90000) g")
    segment_with(env, 1001)
    switched, _ = segment_with(env, 1002)
    segment_with(env, 1003)
    segs = sorted(s.name for s in env.repo.wal_files() if not s.partial)
    full = next(n for n in segs if records(bins, env.repo.archive / n)[-1][0] > SEG - 8192)
    after_switch = records(bins, env.repo.archive / switched)[-1][0] + 24
    rng = random.Random(27)
    cases = [(full, rng.randrange(0, SEG - 16), True) for _ in range(6)]
    cases += [(switched, rng.randrange(after_switch, SEG - 16), False) for _ in range(3)]
    for name, offset, is_gap in cases:
        path = env.repo.archive / name
        intact = path.read_bytes()
        overwrite(path, offset, bytes(b ^ 0x5A for b in intact[offset:offset + 16]))
        try:
            gaps = [g.missing_from for g in env.window().gaps]
            assert gaps == ([name] if is_gap else []), (name, offset)
        finally:
            path.write_bytes(intact)
    overwrite(env.repo.archive / switched, after_switch + 100, b"\xff" * 16)
    inst = env.restore(LatestTarget())
    assert on(inst.dsn, "select count(*) from items where id between 1001 and 1003 or id "
                        "between 2000 and 90000") == [(3 + 88001,)]


# ---- pure parts: where pg_waldump stopped, and whether WAL was written after it ----------------
@pytest.mark.parametrize(("stderr", "where"), [
    ("pg_waldump: error: error in WAL record at 0/3001A40: incorrect resource manager data "
     "checksum in record at 0/4000028", 0x4000028),
    ("pg_waldump: error: error in WAL record at 0/3001A40: invalid magic number A5A5 in WAL "
     "segment 000000010000000000000004, LSN 0/4000000, offset 0", 0x4000000),
    ("pg_waldump: error: error in WAL record at 0/40000A8: record with incorrect prev-link "
     "A5A5A5A5/A5A500A8 at 0/40000D0", 0x40000D0),
    ('pg_waldump: error: could not read from file "000000010000000000000004", offset 100: '
     "read 0 of 8092", 0x4000064),
    ("pg_waldump: error: could not read from file 000000010000000000000004, offset 8192: read "
     "0 of 8192", 0x4002000),
    ("pg_waldump: error: could not find a valid record after 0/3000000", 0x3000000),
    ("pg_waldump: error: error in WAL record at 0/70000A8: invalid record length at 0/70000D0: "
     "expected at least 24, got 0", 0x70000D0),
    ("pg_waldump: error: error in WAL record at 0/3001A40: WAL file is from different database "
     "system: incorrect segment size in page header", None),
])
def test_where_pg_waldump_stopped(stderr: str, where: int | None) -> None:
    from spectral.providers.local.walread import _stop

    assert _stop(stderr, SEG)[1] == where


def test_wal_written_after_a_position(tmp_path: Path) -> None:
    from spectral.providers.local.walread import PAGE, written_after

    base = 7 * SEG
    pages = bytearray(4 * PAGE)
    for i in (0, 1):                       # written pages: magic, info, timeline, address
        struct.pack_into("<HHIQ", pages, i * PAGE, 0xD118, 0, 1, base + i * PAGE)
    struct.pack_into("<HHIQ", pages, 3 * PAGE, 0xD118, 0, 1, base - SEG + 3 * PAGE)  # recycled
    path = tmp_path / "seg"
    path.write_bytes(bytes(pages))
    assert written_after(path, base + 100, SEG)              # page 1 holds WAL: damage
    assert not written_after(path, base + PAGE + 100, SEG)      # zeros and a recycled page follow


def test_a_partial_segment_not_written_yet_is_no_damage(tmp_path: Path) -> None:
    """pg_receivewal creates a `.partial` segment zero-filled before it writes to it: no page
    header yet, and nothing damaged; the same zeros in an archived segment are damage."""
    from spectral.providers.local import walheader

    zero = tmp_path / "000000010000000000000007.partial"
    zero.write_bytes(bytes(8192))
    assert walheader.problem(walheader.read(zero), 7, SEG, partial=True) is None
    assert walheader.problem(walheader.read(zero), 7, SEG) is not None
