"""Issue 27, follow-ups: defects an adversarial probe of the issue's fixes found still open.
Each test was reproduced on the code before its fix and fails there."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import SPECTRAL, ClusterFactory
from spectral.pg.binaries import PgBinaries
from test_pgbackrest import Env as PgbEnv
from test_pgbackrest import commit as pgb_commit
from test_pgbackrest import ids_in, needs_pgbackrest, pgb  # noqa: F401
from test_provider_exit import schemas_on, target_cluster
from test_trust_crash import UNDO_STEPS, staging
from test_trust_crash import Env as CrashEnv
from test_trust_locks import Timed, _queued, _stop, _test_session


@pytest.fixture
def env(work_dir: Path) -> Iterator[CrashEnv]:
    with staging(work_dir) as e:
        yield e


def _postmaster(data_dir: Path) -> int:
    return int((data_dir / "postmaster.pid").read_text().split()[0])


# ---- 2: the commands after a kill -9 of `dr restore --in-place --undo` -----------------------
def test_status_right_after_a_killed_undo_recovers_and_works(env: CrashEnv) -> None:
    """Killed at every step of the undo, `local status` (a natural first look) puts right
    what can be put right without a recovery run, as `local up` does, and answers: it failed
    with exit 2 ("... is missing or empty") while the data directory was set aside."""
    target_xid = env.commit("insert into t values (11, 'target')")
    target = env.rows()
    for n, step in enumerate(UNDO_STEPS):
        env.commit(f"insert into t values ({100 + n}, 'after')")
        before = env.rows()
        env.ok("dr", "restore", "--in-place", "--yes", "--target-xid", str(target_xid))
        assert env.rows() == target
        env.killed("dr", "restore", "--undo", "--yes", step=step)
        res = env.run("local", "status", "--json")
        assert res.returncode == 0, (step, res.stderr)
        assert "shutting down" not in res.stderr, (step, res.stderr)
        env.ok("local", "up")
        if env.rows() != before:            # rolled back: the undo is still due
            env.ok("dr", "restore", "--undo", "--yes")
        assert env.rows() == before, step
        assert not (env.cluster_dir / "intent.json").exists(), step


def _shutting_down(data: Path) -> psycopg.Connection[Any]:
    """A stop begun and not finished, as a command killed while it stopped the server leaves
    it: a smart shutdown held open by a session (returned, for the caller to close)."""
    holder = psycopg.connect(_dsn(data), autocommit=True, application_name="test")
    os.kill(_postmaster(data), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while (data / "postmaster.pid").read_text().splitlines()[7].strip() != "stopping":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return holder


def _dsn(data: Path) -> str:
    lines = (data / "postmaster.pid").read_text().splitlines()
    return f"host={lines[4]} port={lines[3]} user=postgres dbname=postgres"


def test_a_server_left_shutting_down_is_stopped_and_started_again(env: CrashEnv) -> None:
    """A server found shutting down refused every connection ("the database system is shutting
    down") and the command failed with exit 2, for as long as the stop took (for ever with a
    session open): the next command finishes the stop and starts the server again."""
    data = env.cluster_dir / "data"
    for n, first in enumerate((("dr", "backup"), ("local", "up"), ("dr", "drill", "functional"))):
        env.commit(f"insert into t values ({300 + n}, 'before the stop')")
        holder = _shutting_down(data)
        try:
            res = env.run(*first)
        finally:
            with contextlib.suppress(psycopg.Error):
                holder.close()
        assert res.returncode == 0, (first, res.stdout[-1500:], res.stderr[-1500:])
        assert "shutting down" not in res.stderr
        env.ok("local", "up")
        assert 300 + n in env.rows()


# ---- 3: the first drill after a kill -9 of the environment's postmaster ---------------------
def test_the_first_drill_after_the_postmaster_was_killed_works(env: CrashEnv) -> None:
    """kill -9 of the postmaster, then at once (its children may still be alive, its pid not
    yet reaped, postmaster.pid left behind) a drill, `local up` and a restore: the server comes
    back by crash recovery and each works."""
    data = env.cluster_dir / "data"
    for n, first in enumerate((("dr", "drill", "functional"), ("local", "up"),
                               ("dr", "drill", "functional"))):
        env.commit(f"insert into t values ({200 + n}, 'before the crash')")
        os.kill(_postmaster(data), signal.SIGKILL)
        res = env.run(*first)
        assert res.returncode == 0, "\n".join(
            [str(first), res.stdout[-2000:], res.stderr[-2000:],
             (env.cluster_dir / "log" / "postgres.log").read_text()[-3000:]])
        env.ok("local", "up")
        assert 200 + n in env.rows()
    status = json.loads(env.ok("local", "status", "--json").stdout)
    assert status["running"] and status["pid"] == _postmaster(data)


# ---- 6: the pg_dump of `dr exit` gives way to production ---------------------------------------
def _dump_running(dsn: str, proc: subprocess.Popen[str], within: float = 120) -> None:
    """Wait until pg_dump reads the slow table (its COPY runs)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _out, err = proc.communicate()
            raise AssertionError(f"the exit ended before the test saw it dump: {err[-800:]}")
        with _test_session(dsn) as conn:
            if conn.execute("select 1 from pg_stat_activity where state = 'active' and "
                            "query like 'COPY core.slow%'").fetchone():
                return
        time.sleep(0.05)
    raise AssertionError("pg_dump never started its COPY")


def test_a_ddl_during_the_exits_dump_is_not_stalled(work_dir: Path, bins: PgBinaries,
                                                    make_cluster: ClusterFactory) -> None:
    """pg_dump holds every table's lock until it is done: a migration's ALTER TABLE queued
    behind it, and every query behind that, waited for the whole dump (the outage of #27
    item 6). Now the dump gives way after lock_timeout: exit 3 naming the table and the
    statement, nothing left on the target, and the ALTER and the query go through at once."""
    from spectral.refdb.migrate import migrate

    source = make_cluster()
    with source.connect() as conn:
        migrate(conn)
        conn.execute("create type core.wrap as (xs float8[])")
        conn.execute("create table core.slow (id int primary key, v core.wrap)")
        conn.execute("insert into core.slow select g, row(array_fill(g * 1.000001::float8, "
                     "array[1000]))::core.wrap from generate_series(1, 12000) g")
        conn.execute("vacuum analyze core.slow")
    (work_dir / "spectral.toml").write_text(
        f'[environments.app]\nprovider = "local"\ndsn = "{source.conninfo()}"\n'
        f'schemas = ["core", "worlds", "platform"]\nlock_timeout = 1\n')
    _target, target_dsn = target_cluster(make_cluster, bins)
    before = schemas_on(target_dsn)
    proc = subprocess.Popen([SPECTRAL, "dr", "exit", "--to", target_dsn, "--yes"], cwd=work_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        _dump_running(source.conninfo(), proc)
        ddl = "alter table core.slow add column note text"
        alter = Timed(source.conninfo(), ddl)
        _queued(source.conninfo(), "alter table")
        count = Timed(source.conninfo(), "select count(*) from core.slow")
        alter.wait()
        count.wait()
        _out, err = proc.communicate(timeout=300)
    finally:
        _stop(proc)
    assert alter.error is None and alter.seconds is not None, alter.error
    assert alter.seconds < 5, f"the ALTER waited {alter.seconds:.1f}s behind the dump"
    assert count.error is None and count.seconds is not None and count.seconds < 5, (
        count.error, count.seconds)
    assert proc.returncode == 3, (proc.returncode, err)
    error = [line for line in err.splitlines() if line.startswith("spectral: error:")]
    assert len(error) == 1 and "core.slow" in error[0] and "alter table core.slow" in error[0] \
        and "gave way" in error[0], err
    assert schemas_on(target_dsn) == before
    assert list(work_dir.rglob("exit/intent.json")) == []
    with _test_session(source.conninfo()) as conn:     # nothing of the dump left behind
        assert conn.execute("select count(*) from pg_stat_activity where application_name "
                            "like 'spectral-exit-dump%' or application_name = "
                            "'pg_dump'").fetchone() == (0,)


# ---- 5: every kind of target past the window's end or before its start ------------------------
def _restore_code(env: CrashEnv, *target: str) -> tuple[int, str]:
    res = env.run("dr", "restore", *target)
    if res.returncode == 0:
        env.ok("dr", "teardown", "--all")
    return int(res.returncode), res.stderr


def test_targets_outside_the_window_are_usage_errors_and_inside_a_hole_could_not_verify(
        env: CrashEnv) -> None:
    """docs/commands.md: a target outside the window is exit 2 (with the window); a target
    after a hole in the WAL is exit 3 (naming the segment and the last reachable point).
    `--target-lsn FFFFFFFF/FFFFFFFF` was exit 3 ("not archived"), an LSN inside a hole exit 2,
    and an xid the archive does not show exit 2 although it may lie in the hole."""
    early_xid = int(env.sql("select xmin::text::bigint from t where id = 1")[0][0])  # type: ignore[call-overload]
    env.sql("select pg_create_restore_point('early')")
    env.ok("dr", "backup")
    env.ok("dr", "expire", "--keep", "1", "--yes")          # the window now starts later
    env.commit("insert into t values (20, 'inside')")
    outside = {
        "lsn past the end": ("--target-lsn", "FFFFFFFF/FFFFFFFF"),
        "lsn before the start": ("--target-lsn", "0/10"),
        "xid never assigned": ("--target-xid", "4000000000"),
        "xid before the start": ("--target-xid", str(early_xid)),
        "time before the start": ("--target-time", "2001-01-01T00:00:00Z"),
        "time in the future": ("--target-time", "2999-01-01T00:00:00Z"),
        "name never made": ("--target-name", "nosuch"),
        "name before the start": ("--target-name", "early"),
    }
    for what, target in outside.items():
        code, err = _restore_code(env, *target)
        said = ("outside the recoverable window", "in the future",
                "not in the WAL archive's recoverable window")
        assert code == 2 and any(s in err for s in said), (what, code, err)
    # a hole: a segment lost between two backups
    archive = env.dir / ".spectral" / "staging" / "backups" / "wal"
    env.commit("insert into t values (21, 'before the hole')")
    env.sql("select pg_switch_wal()")
    lost_xid = env.commit("insert into t values (22, 'in the lost segment')")
    lost_lsn = str(env.sql("select pg_current_wal_insert_lsn()::text")[0][0])
    lost = str(env.sql("select pg_walfile_name(pg_current_wal_insert_lsn())")[0][0])
    env.sql("select pg_switch_wal()")
    env.commit("insert into t values (23, 'after the hole')")
    env.ok("dr", "backup")
    deadline = time.monotonic() + 30
    while not (archive / lost).exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    (archive / lost).unlink()
    for what, target in {"lsn in the hole": ("--target-lsn", lost_lsn),
                         "xid in the hole": ("--target-xid", str(lost_xid))}.items():
        code, err = _restore_code(env, *target)
        assert code == 3 and lost in err and "--target-lsn" in err, (what, code, err)
    code, err = _restore_code(env, "--target-lsn", "FFFFFFFF/FFFFFFFF")
    assert code == 2 and "outside the recoverable window" in err, err


# ---- 4: a missing timeline history file is named, not an intact segment ------------------------
def test_a_missing_history_file_is_named_and_never_an_intact_segment(env: CrashEnv) -> None:
    """After an in-place restore (timeline 2) the archived 00000002.history is deleted: the
    window said nothing, or named an intact WAL segment as damaged (read on from timeline 2
    into the abandoned history's later segments). It names the history file (one line, exit
    3 where a target needs it: from a backup of timeline 1 to a point after the switch); a
    target before the switch restores."""
    early = env.commit("insert into t values (11, 'before the rewind')")
    for n in range(3):          # the history the restore abandons runs on for segments
        env.commit(f"insert into t values ({12 + n}, 'rewound')")
        env.sql("select pg_switch_wal()")
    env.ok("dr", "restore", "--in-place", "--yes", "--target-xid", str(early))
    env.commit("insert into t values (20, 'on timeline 2')")
    archive = env.dir / ".spectral" / "staging" / "backups" / "wal"
    last = str(env.sql("select pg_walfile_name(pg_switch_wal() - 1)")[0][0])
    history = archive / "00000002.history"
    deadline = time.monotonic() + 30
    while not (history.exists() and (archive / last).exists()):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    history.unlink()
    listed = env.run("--json", "dr", "backups")
    assert listed.returncode == 0, listed.stderr
    text = json.dumps(json.loads(listed.stdout)["window"])
    assert "00000002.history" in text, text
    assert "damaged" not in text, text
    res = env.run("dr", "restore", "--latest")
    error = [ln for ln in res.stderr.splitlines() if ln.startswith("spectral: error:")]
    assert res.returncode == 3, (res.returncode, res.stderr)
    assert len(error) == 1 and "00000002.history" in error[0], res.stderr
    assert "damaged" not in res.stderr, res.stderr
    res = env.run("--json", "dr", "restore", "--target-xid", str(early))
    assert res.returncode == 0, res.stderr
    with psycopg.connect(json.loads(res.stdout)["dsn"]) as conn:
        assert [r[0] for r in conn.execute("select id from t order by id")] == \
            list(range(1, 12))
    env.ok("dr", "teardown", "--all")


# ---- 1: pgBackRest's window starts at the backup's consistency point, not the next second -------
@needs_pgbackrest
@pytest.mark.parametrize("pgb", ["posix"], indirect=True)
def test_pgbackrest_window_starts_where_the_backup_is_consistent(pgb: PgbEnv) -> None:  # noqa: F811
    """pgBackRest gives the stop time in whole seconds and the window started at the next
    one: a time target after the last commit the backup holds, before that second ended, was
    exit 2 although recovery reaches it. The window starts at the last transaction end before
    the backup's stop LSN (read from the WAL): targets from there restore exactly, targets
    before it (the backup already holds a later commit) are outside."""
    from datetime import timedelta

    _, held = pgb_commit(pgb, 101, "held by the backup")
    pgb.run("dr", "backup")
    _, after = pgb_commit(pgb, 102, "after the backup")
    listed = pgb.run("--json", "dr", "backups")
    window = listed["window"]
    # (the JSON shows whole seconds; the restores below are exact)
    assert window["earliest_time"] == held.isoformat(timespec="seconds"), (listed, held)
    for target in (held, held + timedelta(milliseconds=1), after - timedelta(microseconds=1)):
        inst = pgb.run("--json", "dr", "restore", "--target-time", target.isoformat())
        assert ids_in(pgb, inst)[-2:] == [100, 101], target
        pgb.run("dr", "teardown", inst["id"])
    for args in (("--target-time", (held - timedelta(milliseconds=1)).isoformat()),
                 ("--target-time", held.isoformat(), "--exclusive")):
        err = pgb.run("dr", "restore", *args, expect=2)
        assert "outside the recoverable window" in err, (args, err)
