"""Long profile, PostgreSQL 18 (session 14): a `--latest` restore of a crashed source restored
the rows of an abandoned history, exit 0, without the live history's last three commits. An
in-place restore had begun timeline 2, a backup was taken on it, then 00000002.history was lost
from the archive; the undo's promotion counted history files from timeline 1, found none for 2,
and began a second timeline 2. From then on the archive held two histories under one id (the
restore's backup and WAL, the undo's WAL), and the latest point followed the restore's. Now a
promotion that would reuse an id the repository still holds is refused (exit 3), naming the
lost history file; once it is back, the undo begins timeline 3."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from spectral.pg.cluster import proc_alive
from spectral.providers.local import inplace
from spectral.providers.local.newtimeline import next_timeline
from test_trust_crash import (
    Env,
    _restore,
    _restore_args,
    env,  # noqa: F401  (the fixture)
)


def test_the_next_timeline_counts_history_files_up_to_the_first_missing() -> None:
    assert next_timeline(1, set()) == 2
    assert next_timeline(1, {2, 3}) == 4
    assert next_timeline(1, {3}) == 2        # 2.history lost: 2 again
    assert next_timeline(3, {2}) == 4


def _timeline(e: Env) -> int:
    return int(e.sql("select timeline_id from pg_control_checkpoint()")[0][0])  # type: ignore[call-overload]


@pytest.mark.server
def test_a_promotion_never_reuses_a_timeline_whose_history_file_is_lost(
        env: Env) -> None:  # noqa: F811
    target_xid = env.commit("insert into t values (11, 'target')")
    env.commit("insert into t values (12, 'after')")
    before = env.rows()
    _restore(env, target_xid)
    env.ok("dr", "backup")                           # a backup on timeline 2
    restored = env.rows()
    assert _timeline(env) == 2
    history = env.dir / ".spectral" / "staging" / "backups" / "wal" / "00000002.history"
    history.unlink()

    undo = env.run("dr", "restore", "--undo", "--yes")
    assert undo.returncode == 3, (undo.stdout, undo.stderr)
    assert "00000002.history" in undo.stderr and "timeline 2" in undo.stderr, undo.stderr
    again = env.run(*_restore_args(target_xid))      # from the backup on timeline 1: 2 again
    assert again.returncode == 3 and "00000002.history" in again.stderr, again.stderr
    assert env.rows() == restored and _timeline(env) == 2   # nothing was touched

    # the live server has its timeline's history file in pg_wal: put back, the undo works
    shutil.copyfile(env.cluster_dir / "data" / "pg_wal" / history.name, history)
    env.ok("dr", "restore", "--undo", "--yes")
    assert env.rows() == before and _timeline(env) == 3


@pytest.mark.server
@pytest.mark.parametrize("expired", [True, False])
def test_a_latest_restore_refuses_backups_of_another_history_under_a_reused_id(
        env: Env, monkeypatch: pytest.MonkeyPatch, expired: bool) -> None:  # noqa: F811
    """An archive that already holds two histories under one id (made by a promotion outside
    spectral, or by one before this check): the latest point of the crashed source is refused,
    exit 3, naming the backups of the other history; it restored the abandoned history's rows
    with exit 0 before."""
    target_xid = env.commit("insert into t values (11, 'target')")
    env.commit("insert into t values (12, 'after')")
    _restore(env, target_xid)
    env.ok("dr", "backup")                           # on the restore's timeline 2
    (env.dir / ".spectral" / "staging" / "backups" / "wal" / "00000002.history").unlink()
    if expired:
        env.ok("dr", "expire", "--keep", "1", "--yes")   # the backup on timeline 1 goes
    monkeypatch.setattr(inplace, "check_fresh", lambda *args: None)   # the unchecked promotion
    env.ok("dr", "restore", "--undo", "--yes")
    assert _timeline(env) == 2                       # a second timeline 2
    env.commit("insert into t values (13, 'after the undo')")
    pid = int((env.cluster_dir / "data" / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while proc_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    res = env.run("dr", "restore", "--latest")
    assert res.returncode == 3, (res.stdout, res.stderr)
    if expired:      # the only backup is the other history's
        assert "another history under the same timeline id (2)" in res.stderr, res.stderr
    env.ok("local", "up")


@pytest.mark.server
def test_an_undo_that_fails_after_the_stop_starts_the_server_again(
        work_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The long lifecycle profile (PostgreSQL 15, session 15): an undo refused once the server
    had stopped (a lost history file, found when the put-back database was to move to a new
    timeline) put the restored data back but left the live server stopped. The refusal is
    made to happen there; the restored database must be running again, as before the undo."""
    from conftest import notes_environment
    from spectral.errors import CouldNotVerify
    from spectral.pg.conn import connect
    from spectral.providers.local.inplace import InPlace
    from spectral.recovery_target import TargetKind, target_of

    with notes_environment(work_dir) as environment:
        p = environment.provider
        dsn = p.running_source()
        assert dsn is not None
        with connect(dsn) as conn:
            xid = conn.execute("insert into core.notes values (2, 'later') returning "
                               "pg_current_xact_id()::text").fetchone()[0]
        p.restore_in_place(target_of(TargetKind.XID, str(xid), exclusive=True), confirmed=True)

        def refused(self: InPlace, cluster: object, intent: object = None) -> int:
            raise CouldNotVerify("the history file of timeline 3 is missing (made up)")

        monkeypatch.setattr(InPlace, "branch_new_timeline", refused)
        with pytest.raises(CouldNotVerify, match="made up"):
            p.undo_in_place()
        local = p.local
        assert local.cluster().is_running()             # was left stopped
        with connect(local.cluster().conninfo()) as conn:
            assert conn.execute("select count(*) from core.notes").fetchone() == (1,)
        monkeypatch.undo()
        p.undo_in_place()                                # and can be run again
        with connect(local.cluster().conninfo()) as conn:
            assert conn.execute("select count(*) from core.notes").fetchone() == (2,)
