"""Regression tests for issue 27's defect 7: the WAL stream under a server restart, an
in-place restore to a recent point (a new timeline), and a kill -9 of a synchronous stream.
Each was reproduced on the code before it and fails there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conftest import SPECTRAL, _processes_under, bare_local, spectral
from spectral.pg.conn import connect
from spectral.providers.local.wal import parse_lsn, segment_name, segment_of
from spectral.waits import wait_until

STREAM = "spectral_stream"


@contextmanager
def local_environment(work_dir: Path) -> Iterator[dict[str, Any]]:
    info = bare_local(work_dir)
    try:
        yield info
    finally:
        spectral("dr", "restore", "--discard-previous", "--yes", cwd=work_dir)
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


@contextmanager
def running_stream(work_dir: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    stream = subprocess.Popen([SPECTRAL, "dr", "wal", "stream", "--seconds", "240", *args],
                              cwd=work_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        yield stream
    finally:
        if stream.poll() is None:
            stream.send_signal(signal.SIGINT)
        _out, err = stream.communicate(timeout=60)
        print(err)


def replication(dsn: str) -> tuple[str, str] | None:
    try:
        with connect(dsn) as conn:
            row = conn.execute("select write_lsn::text, sync_state from pg_stat_replication "
                               "where application_name = %s", (STREAM,)).fetchone()
    except Exception:   # the server is restarting
        return None
    return (str(row[0]), str(row[1])) if row and row[0] else None


def wait_streaming(dsn: str, timeout: float = 60) -> None:
    wait_until(lambda: replication(dsn), timeout=timeout, max_interval=0.5, what="the stream")


def write_and_wait_streamed(dsn: str, stream_dir: Path, table: str) -> str:
    """Commit a row, then wait until the stream has it: the stream's write position
    passes the commit and the segment holding it is in the stream folder."""
    with connect(dsn, options="-c statement_timeout=60000") as conn:
        conn.execute(f"create table if not exists core.{table} (n int)")
        conn.execute(f"insert into core.{table} values (1)")
        row = conn.execute("select pg_current_wal_lsn()::text, pg_walfile_name("
                           "pg_current_wal_lsn())").fetchone()
    assert row is not None
    lsn, walfile = str(row[0]), str(row[1])

    def flushed() -> bool:
        rep = replication(dsn)
        return rep is not None and parse_lsn(rep[0]) >= parse_lsn(lsn)

    wait_until(flushed, timeout=60, max_interval=0.5, what=f"the stream to flush {lsn}")
    names = {p.name.removesuffix(".partial") for p in stream_dir.iterdir()}
    assert walfile in names, (walfile, sorted(names))
    return lsn


SEG = 16 * 1024 * 1024


def test_what_blocks_the_stream_after_a_timeline_change_is_set_aside() -> None:
    """pg_receivewal resumes after the newest file of its folder, on that file's timeline; a
    point the server's history does not hold makes it fail for ever. The files in the way are
    named (to be set aside), newest first, until the resume point is served."""
    from spectral.providers.local.streamdir import segments_to_set_aside

    fork = 5 * SEG + 0x123456            # timeline 2 left timeline 1 inside segment 5
    lineage: list[tuple[int, int | None]] = [(1, fork), (2, None)]
    names = ["000000010000000000000004", "000000010000000000000005",
             "000000010000000000000006", "000000010000000000000007.partial"]
    # segment 5 is complete: resuming after it asks for 0/6000000 on timeline 1, past the fork
    assert segments_to_set_aside(names, lineage, 6 * SEG, SEG) == names[1:]
    # the same fork segment as a .partial: its bytes past the fork are the abandoned history
    assert segments_to_set_aside([names[0], "000000010000000000000005.partial"], lineage,
                                 6 * SEG, SEG) == ["000000010000000000000005.partial"]
    # once pg_receivewal followed the switch itself, nothing is in the way
    followed = [names[0], "000000010000000000000005.partial",
                "000000020000000000000005.partial"]
    assert segments_to_set_aside(followed, lineage, 6 * SEG, SEG) == []
    # a fork at a segment boundary: resuming at it is in the history
    assert segments_to_set_aside(names[:1], [(1, 5 * SEG), (2, None)], 6 * SEG, SEG) == []
    # files of a timeline an undo abandoned (2), the server on 3 forked from 1
    assert segments_to_set_aside(["000000010000000000000003", "000000020000000000000004"],
                                 [(1, 4 * SEG), (3, None)], 5 * SEG, SEG) == \
        ["000000020000000000000004"]
    # on the current timeline, a resume point ahead of what the server has flushed
    assert segments_to_set_aside(["000000010000000000000003", "000000010000000000000004"],
                                 [(1, None)], 4 * SEG + 100, SEG) == ["000000010000000000000004"]
    assert segments_to_set_aside(["000000010000000000000003", "000000010000000000000004"],
                                 [(1, None)], 5 * SEG, SEG) == []


def test_what_an_undo_puts_back_on_the_history_comes_back() -> None:
    """After an undo the server is on the old timeline again, at the position it had reached:
    the stream's files of it that were set aside come back (the stream resumes after them, at
    WAL the server still has), those of the undone timeline stay aside."""
    from spectral.providers.local.streamdir import segments_to_bring_back, segments_to_set_aside

    present = ["000000010000000000000005", "000000010000000000000006.partial",
               "000000020000000000000006.partial", "000000020000000000000007.partial"]
    aside = ["000000010000000000000006", "000000010000000000000007",
             "000000010000000000000008.partial", "000000010000000000000006.20260101T000000"]
    back = segments_to_bring_back(present, aside, [(1, None)], 8 * SEG + 500, SEG)
    assert back == aside[:3]
    assert segments_to_set_aside(present + back, [(1, None)], 8 * SEG + 500, SEG) == present[2:]
    # the server still on timeline 2: timeline 1's files past the fork stay aside
    assert segments_to_bring_back(present, aside, [(1, 6 * SEG + 10), (2, None)],
                                  7 * SEG + 10, SEG) == []


def test_the_stream_resumes_after_the_newest_archived_segment_of_the_history() -> None:
    from spectral.providers.local.streamdir import archived_resume_point

    present = ["000000010000000000000004", "000000010000000000000005.partial"]
    archived = ["000000010000000000000005", "000000010000000000000006",
                "000000010000000000000007", "000000010000000000000007.partial",
                "000000020000000000000009", "00000002.history"]
    assert archived_resume_point(present, archived, [(1, None)], 8 * SEG + 1, SEG) == \
        "000000010000000000000007"
    # not past what the server flushed, never a fork segment or another history's
    assert archived_resume_point(present, archived, [(1, None)], 7 * SEG, SEG) == \
        "000000010000000000000006"
    assert archived_resume_point(present, archived, [(1, 7 * SEG + 5), (3, None)],
                                 9 * SEG, SEG) == "000000010000000000000006"
    # the stream already resumes past it: nothing to copy
    assert archived_resume_point(["000000010000000000000008.partial"], archived, [(1, None)],
                                 9 * SEG, SEG) is None


def test_setting_aside_never_overwrites_an_earlier_copy(tmp_path: Path) -> None:
    from spectral.providers.local.streamdir import set_aside_blocking

    name = "000000010000000000000005"
    for content in (b"first", b"second"):
        (tmp_path / name).write_bytes(content)
        assert set_aside_blocking(tmp_path, [(1, 5 * SEG + 10), (2, None)], 6 * SEG, SEG) == [name]
    kept = sorted(p.read_bytes() for p in (tmp_path / "abandoned").iterdir())
    assert kept == [b"first", b"second"]


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.parametrize("mode", ["asynchronous", "synchronous"])
def test_stream_survives_a_restart_of_the_server(work_dir: Path, mode: str) -> None:
    """A restart of the server ("the database system is shutting down") is an outage the
    supervisor waits out: the stream comes back and WAL written after the restart arrives."""
    args = ("--synchronous",) if mode == "synchronous" else ()
    with local_environment(work_dir) as info, running_stream(work_dir, *args) as stream:
        stream_dir = Path(info["state_dir"]) / "backups" / "stream"
        wait_streaming(info["dsn"])
        write_and_wait_streamed(info["dsn"], stream_dir, "before_restart")
        for _ in range(2):   # two restarts, the second while the first reconnect is fresh
            assert spectral("local", "down", cwd=work_dir).returncode == 0
            time.sleep(3)    # longer than the supervisor's first backoff
            assert spectral("local", "up", cwd=work_dir).returncode == 0
            wait_streaming(info["dsn"])
            assert stream.poll() is None, stream.communicate(timeout=10)
        write_and_wait_streamed(info["dsn"], stream_dir, "after_restart")
        status = json.loads(spectral("dr", "wal", "status", "--json", cwd=work_dir).stdout)
        assert status["stream"] is not None and status["stream_state"] == "streaming"


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.parametrize("mode", ["asynchronous", "synchronous"])
def test_stream_follows_the_new_timeline_of_an_in_place_restore(work_dir: Path,
                                                                mode: str) -> None:
    """An in-place restore to a point inside a segment the stream had completed: that segment
    holds the abandoned history past the fork, and pg_receivewal resuming after it asks for a
    point that is not in the server's history. The stream must follow the new timeline, and
    what it set aside is kept, not deleted; after the undo it follows the old timeline again."""
    args = ("--synchronous",) if mode == "synchronous" else ()
    with local_environment(work_dir) as info, running_stream(work_dir, *args) as stream:
        stream_dir = Path(info["state_dir"]) / "backups" / "stream"
        dsn = info["dsn"]
        assert spectral("dr", "backup", cwd=work_dir).returncode == 0
        wait_streaming(dsn)
        target = write_and_wait_streamed(dsn, stream_dir, "kept")
        with connect(dsn) as conn:
            conn.execute("insert into core.kept values (2)")    # after the target, same segment
            conn.execute("select pg_switch_wal()")              # the stream completes it
            conn.execute("create table core.abandoned (n int)")
        write_and_wait_streamed(dsn, stream_dir, "abandoned")
        fork = segment_name(1, segment_of(parse_lsn(target), SEG), SEG)
        assert (stream_dir / fork).exists()     # complete: the next start would be past it
        res = spectral("dr", "restore", "--target-lsn", target, "--in-place", "--yes",
                       cwd=work_dir)
        assert res.returncode == 0, res.stderr
        with connect(dsn) as conn:
            assert conn.execute("select count(*) from core.kept").fetchone() == (1,)
            tli = conn.execute("select timeline_id from pg_control_checkpoint()").fetchone()
        assert tli is not None and tli[0] > 1
        wait_streaming(dsn, timeout=90)
        after = write_and_wait_streamed(dsn, stream_dir, "after_restore")
        with connect(dsn) as conn:
            row = conn.execute("select pg_walfile_name(%s::pg_lsn)", (after,)).fetchone()
        assert row is not None and int(str(row[0])[:8], 16) == tli[0]
        assert stream.poll() is None
        aside = [p.name for p in (stream_dir / "abandoned").iterdir()]
        assert fork in aside, aside      # set aside, never deleted
        # the window reaches the new timeline's WAL through the stream folder
        res = spectral("dr", "restore", "--latest", "--json", cwd=work_dir)
        assert res.returncode == 0, res.stderr
        inst = json.loads(res.stdout)
        try:
            with connect(inst["dsn"]) as conn:
                assert conn.execute("select count(*) from core.after_restore").fetchone() == (1,)
                assert conn.execute("select count(*) from core.kept").fetchone() == (1,)
        finally:
            spectral("dr", "teardown", "--all", cwd=work_dir)
        if mode == "synchronous":
            with connect(dsn) as conn:
                assert conn.execute("show synchronous_standby_names").fetchone() == (STREAM,)
        # the undo puts timeline 1's history back, at the position it had reached
        res = spectral("dr", "restore", "--undo", "--yes", cwd=work_dir)
        assert res.returncode == 0, res.stderr
        wait_streaming(dsn, timeout=90)
        undone = write_and_wait_streamed(dsn, stream_dir, "after_undo")
        with connect(dsn) as conn:
            row = conn.execute("select pg_walfile_name(%s::pg_lsn), timeline_id "
                               "from pg_control_checkpoint()", (undone,)).fetchone()
            assert conn.execute("select count(*) from core.abandoned").fetchone() == (1,)
        assert row is not None and int(str(row[0])[:8], 16) == row[1] != tli[0]
        assert stream.poll() is None


@pytest.mark.slow
@pytest.mark.server
def test_stream_resumes_when_the_server_removed_its_resume_point(work_dir: Path) -> None:
    """The slot was dropped while no stream ran (an operator, or a slot invalidated) and the
    server removed the WAL the stream would resume at (archived first, as always): the
    supervisor resumes after the newest archived segment instead of failing for ever."""
    with local_environment(work_dir) as info:
        dsn = info["dsn"]
        stream_dir = Path(info["state_dir"]) / "backups" / "stream"
        with running_stream(work_dir):
            wait_streaming(dsn)
            write_and_wait_streamed(dsn, stream_dir, "before_gap")
        with connect(dsn) as conn:
            conn.execute("select pg_drop_replication_slot('spectral_stream')")
            conn.execute("create table core.gap (n int)")
            for n in range(4):
                conn.execute("insert into core.gap values (%s)", (n,))
                conn.execute("checkpoint")
                wanted = conn.execute("select pg_walfile_name(pg_switch_wal())").fetchone()
            conn.execute("checkpoint")
        assert wanted is not None
        archive = Path(info["state_dir"]) / "backups" / "wal"
        oldest = min(p.name for p in stream_dir.iterdir() if len(p.name) >= 24)[:24]
        wait_until(lambda: (archive / str(wanted[0])).exists() or None, timeout=60,
                   what="the archive")

        def removed() -> bool | None:
            """The server removes (or recycles) it at a checkpoint once it is archived (a
            checkpoint before the archiver got to it keeps it: seen in CI)."""
            with connect(dsn) as conn:
                conn.execute("checkpoint")
                names = [str(r[0]) for r in conn.execute("select name from pg_ls_waldir()")]
            return oldest not in names or None

        wait_until(removed, timeout=60, what="the server removing the resume point")
        with running_stream(work_dir) as stream:
            wait_streaming(dsn, timeout=90)
            write_and_wait_streamed(dsn, stream_dir, "after_gap")
            assert stream.poll() is None


def _commit_in_background(dsn: str) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def commit() -> None:
        start = time.monotonic()
        try:
            with connect(dsn) as conn:
                conn.execute("set statement_timeout = '60s'")
                conn.execute("insert into core.sync_probe values (1)")
            result["ok"] = True
        except Exception as exc:
            result["error"] = repr(exc)
        result["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=commit, daemon=True)
    thread.start()
    return thread, result


@pytest.mark.server
@pytest.mark.parametrize("command", [("local", "up"), ("dr", "wal", "status")])
def test_a_killed_synchronous_stream_never_blocks_commits(work_dir: Path,
                                                          command: tuple[str, ...]) -> None:
    """kill -9 of `dr wal stream --synchronous` leaves synchronous_standby_names set: every
    commit waits for a standby that is gone. The next spectral command removes it, and
    `dr wal status` says commits were blocked."""
    with local_environment(work_dir) as info:
        dsn = info["dsn"]
        with connect(dsn) as conn:
            conn.execute("create table core.sync_probe (n int)")
        with running_stream(work_dir, "--synchronous") as stream:
            wait_until(lambda: (r := replication(dsn)) is not None and r[1] == "sync",
                       timeout=60, what="synchronous stream")
            os.kill(stream.pid, signal.SIGKILL)
            stream.wait(timeout=10)
        thread, result = _commit_in_background(dsn)
        thread.join(timeout=5)
        assert thread.is_alive(), result     # the commit waits for the dead standby
        started = time.monotonic()
        res = spectral(*command, cwd=work_dir)
        assert res.returncode == 0, res.stderr
        thread.join(timeout=15)
        assert not thread.is_alive(), "the commit still waits for a dead synchronous stream"
        assert result.get("ok"), result
        assert time.monotonic() - started < 30
        if command[-1] == "status":
            assert "commits are blocked: synchronous stream is dead" in res.stdout
        with connect(dsn) as conn:
            assert conn.execute("show synchronous_standby_names").fetchone() == ("",)
            start = time.monotonic()
            conn.execute("insert into core.sync_probe values (2)")
            assert time.monotonic() - start < 5
        again = spectral("dr", "wal", "status", cwd=work_dir)
        assert "commits are blocked" not in again.stdout


@pytest.mark.server
def test_wal_status_is_live_while_pg_receivewal_runs(work_dir: Path) -> None:
    """A pg_receivewal that failed once and now runs is not "failing", and a stream that has
    flushed everything has no lag in seconds (pg_stat_replication keeps the last measured
    flush_lag of pg_receivewal forever)."""
    with local_environment(work_dir) as info, running_stream(work_dir, "--synchronous") as stream:
        dsn = info["dsn"]
        state_file = Path(info["state_dir"]) / "backups" / "stream" / "supervisor.json"
        wait_streaming(dsn)
        first = json.loads(state_file.read_text())["pid"]
        os.kill(first, signal.SIGKILL)        # a pg_receivewal started by this test's stream
        wait_until(lambda: (json.loads(state_file.read_text()).get("pid") or first) != first,
                   timeout=30, what="a new pg_receivewal")
        wait_streaming(dsn)
        with connect(dsn) as conn:
            conn.execute("create table core.lag_probe (n int)")
            for n in range(20):
                conn.execute("insert into core.lag_probe values (%s)", (n,))

        def caught_up() -> dict[str, Any] | None:
            res = spectral("dr", "wal", "status", "--json", cwd=work_dir)
            s = json.loads(res.stdout)
            return s if s["stream"] and s["stream"]["lag_bytes"] == 0 else None

        status = wait_until(caught_up, timeout=60, what="the stream to catch up")
        assert status["stream"]["lag_seconds"] == 0.0 and status["rpo_seconds"] == 0.0
        assert status["supervisor"]["alive"] and not status["supervisor"]["failing"]
        human = spectral("dr", "wal", "status", cwd=work_dir).stdout
        assert "failing" not in human, human
        # one stream at a time: a second supervisor would fight the first for the slot
        second = spectral("dr", "wal", "stream", "--seconds", "5", cwd=work_dir)
        assert second.returncode == 2 and "already running" in second.stderr, second.stderr
        assert json.loads(state_file.read_text())["supervisor_pid"] == stream.pid
