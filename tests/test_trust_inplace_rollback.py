"""Adversary round, session 10 (F1, wrong data with exit 0): an in-place restore whose
recovery ended short of the archive (a damaged page header in an archived segment; here an
archived segment the server cannot read) failed,
exit 3, and put the live data back. But its server had promoted the restored copy and
archived a new timeline, branching before the damage; the live database stayed on the old
one. Every later `--latest` followed that abandoned timeline and exited 0 without what the
live database committed since the branch point, even once the segment was good again. The
put-back database now moves to a timeline above it, as after a kill."""

from __future__ import annotations

import json
import os
import time

from spectral.pg.conn import connect
from test_trust_crash import (
    Env,
    env,  # noqa: F401  (the fixture)
)


def test_a_failed_in_place_restore_never_leaves_a_timeline_later_restores_follow(
        env: Env) -> None:  # noqa: F811
    archive = env.dir / ".spectral" / "staging" / "backups" / "wal"
    env.commit("insert into t values (101, 'one')")
    segment = str(env.sql("select pg_walfile_name(pg_current_wal_lsn())")[0][0])
    env.sql("select pg_switch_wal()")
    env.commit("insert into t values (102, 'two')")
    env.sql("select pg_switch_wal()")
    deadline = time.monotonic() + 60
    while not (archive / segment).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    # the server's restore_command (its OS user) cannot read the segment; spectral (root)
    # can, so the window sees no gap: the recovery ends short of the archive and promotes
    # (the adversary's first page header damage did the same before pg_waldump's blind spot
    # was covered, A7)
    os.chmod(archive / segment, 0)
    failed = env.run("dr", "restore", "--in-place", "--yes", "--latest")
    assert failed.returncode == 3, failed.stdout + failed.stderr
    env.commit("insert into t values (103, 'after the failed restore')")
    live = env.rows()
    os.chmod(archive / segment, 0o640)           # the segment is readable again
    res = env.run("--json", "dr", "restore", "--latest")
    assert res.returncode == 0, res.stderr
    with connect(json.loads(res.stdout)["dsn"]) as conn:
        got = [int(r[0]) for r in conn.execute("select id from t order by id")]
    assert got == live, f"--latest restored {got}, the live database holds {live}"
    assert "timeline" in failed.stderr, failed.stderr   # what the rollback did, said
