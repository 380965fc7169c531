"""The WAL summarizer (PostgreSQL 17+) after an in-place restore and after an undo.

A restore to a point before the branch of the newest timeline in the archive (after an undo,
say) gets from PostgreSQL a history file that copies the newest timeline's history: it says
the old timeline runs on past the point where this data directory left it. The summarizer,
turned back on after promotion, starts on the oldest timeline that still has a segment in
pg_wal and follows that history: it read WAL this directory never had ("could not read WAL
from timeline 1 ...: unexpected pageaddr / incorrect prev-link"), retried every 10 s for
good, and held up every later shutdown by those 10 s. An undo that puts back such a directory
inherits its history. Here the summarizer must summarize the new timeline, past the promotion,
with no error in the server log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_trust_crash import Env, staging

SUMMARIZER_ERRORS = ("could not read WAL from timeline", "WAL summarization is not progressing")


@pytest.fixture
def env(work_dir: Path, bins: object) -> Iterator[Env]:
    if getattr(bins, "major", 0) < 17:
        pytest.skip("the WAL summarizer is PostgreSQL 17+")
    with staging(work_dir) as e:
        yield e


def _log(e: Env) -> Path:
    return e.cluster_dir / "log" / "postgres.log"


def _log_size(e: Env) -> int:
    return _log(e).stat().st_size if _log(e).exists() else 0


def _summarizes_new_timeline(e: Env, since: int) -> None:
    """After a checkpoint on the current timeline, the summarizer writes a summary of it that
    reaches that checkpoint's redo point; the server log since `since` holds no summarizer
    error."""
    tli = int(str(e.sql("select timeline_id from pg_control_checkpoint()")[0][0]))
    lsn = str(e.sql("select pg_current_wal_lsn()")[0][0])
    e.sql("checkpoint")
    state: list[tuple[object, ...]] = []
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        state = e.sql(f"select summarized_tli, summarized_lsn >= '{lsn}'::pg_lsn, "
                      f"summarized_lsn::text from pg_get_wal_summarizer_state()")
        if state and state[0][0] == tli and state[0][1]:
            break
        time.sleep(0.2)
    with open(_log(e), "rb") as f:
        f.seek(since)
        log = f.read().decode(errors="replace")
    errors = [line for line in log.splitlines() if any(m in line for m in SUMMARIZER_ERRORS)]
    assert errors == [], errors[:3]
    assert state and state[0][0] == tli and state[0][1], (
        f"summarizer at {state} (timeline, reached, lsn), not past {lsn} on timeline {tli}")


def _restore(e: Env, xid: int) -> None:
    e.ok("dr", "restore", "--in-place", "--yes", "--target-xid", str(xid))


def test_summarizer_works_after_restore_before_an_undos_branch(env: Env) -> None:
    """restore, undo, restore again to the same point: the second restore's timeline history
    names the undo's timeline, whose parent runs past the restore's stop point."""
    xid = env.commit("insert into t values (11, 'target')")
    for n in range(3):
        env.commit(f"insert into t values ({100 + n}, 'after')")
        env.sql("select pg_switch_wal()")
    since = _log_size(env)
    _restore(env, xid)
    _summarizes_new_timeline(env, since)
    since = _log_size(env)
    env.ok("dr", "restore", "--undo", "--yes")
    _summarizes_new_timeline(env, since)
    env.commit("insert into t values (200, 'after the undo')")
    since = _log_size(env)
    _restore(env, xid)
    _summarizes_new_timeline(env, since)
    assert env.rows() == [*range(1, 12)]
    # and again after a restart of the server (the summarizer starts over from pg_wal)
    env.ok("local", "down")
    env.ok("local", "up")
    _summarizes_new_timeline(env, since)


def test_summarizer_works_after_undo_of_a_restore_over_a_restore(env: Env) -> None:
    """An undo puts back a directory whose history names a timeline that branched later than
    its own parent's end: the undo's new timeline inherits that history (00000006.history).
    Here the summarizer also worked before the fix (the undo's end-of-recovery checkpoint had
    already recycled every older segment): this guards the undo's path through the same
    mechanism, it is not the failing case."""
    xid = env.commit("insert into t values (11, 'target')")
    env.commit("insert into t values (100, 'after')")
    env.sql("select pg_switch_wal()")
    _restore(env, xid)
    env.ok("dr", "restore", "--undo", "--yes")
    _restore(env, xid)   # before the undo's branch
    env.commit("insert into t values (300, 'on the second restore')")
    _restore(env, xid)   # keeps the second restore's directory aside
    since = _log_size(env)
    env.ok("dr", "restore", "--undo", "--yes")   # puts it back
    _summarizes_new_timeline(env, since)
    assert 300 in env.rows()
