"""Long profile, PostgreSQL 18 (session 10, 20 min): kill -9 of `dr restore --undo` after the
put-back database had come up on its new timeline (`undo:recovered`). The next `local up` ran
the undo's archive recovery a second time, from the promoted database's own checkpoint; the
archive held a segment of the same name from an abandoned history (history files had been
lost, so PostgreSQL had given the new timeline an id already used), restore_command served
it, and recovery ended "could not locate a valid checkpoint record": exit 3, the live
database down. A database that has already left recovery is started as it is."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

from spectral.pg.binaries import find_binaries
from spectral.pg.cluster import proc_alive
from test_trust_crash import (
    Env,
    _restore,
    env,  # noqa: F401  (the fixture)
)


def test_an_undo_killed_after_its_new_timeline_is_not_recovered_again(env: Env) -> None:  # noqa: F811
    target_xid = env.commit("insert into t values (11, 'target')")
    env.commit("insert into t values (12, 'after')")
    before = env.rows()
    _restore(env, target_xid)
    env.killed("dr", "restore", "--undo", "--yes", step="undo:recovered")
    timeline = int(env.sql("select timeline_id from pg_control_checkpoint()")[0][0])
    data = env.cluster_dir / "data"
    pid = int((data / "postmaster.pid").read_text().split()[0])   # the killed run's server
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + 60
    while proc_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    # a segment of the checkpoint's name from another history sits in the archive (what
    # reusing a timeline's id after lost history files allows)
    control = subprocess.run([find_binaries(None).path("pg_controldata"), str(data)],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "LC_ALL": "C"}).stdout
    lsn = re.search(r"Latest checkpoint location:\s+(\S+)", control)
    assert lsn is not None
    hi, lo = (int(x, 16) for x in lsn.group(1).split("/"))
    segment = f"{timeline:08X}{hi:08X}{lo >> 24:08X}"
    archive = env.dir / ".spectral" / "staging" / "backups" / "wal"
    other = next(p for p in sorted(archive.iterdir()) if len(p.name) == 24 and p.name != segment)
    shutil.copyfile(other, archive / segment)
    res = env.ok("local", "up")
    assert "finished" in res.stderr and f"on timeline {timeline}" in res.stderr, res.stderr
    assert env.rows() == before
    assert not (env.cluster_dir / "intent.json").exists()



def test_an_undo_reads_no_archived_wal_of_its_timeline(env: Env) -> None:  # noqa: F811
    """Long profile, PostgreSQL 15 (session 11, 12 min; not reproduced by replay): after lost
    history files and a WAL stream, an undo left the live database holding the in-place
    restore's rows instead of the rows it had put back. The undo's archive recovery (which
    moves the put-back database to a new timeline) fetched segments of the put-back
    database's timeline id through restore_command; when that id was reused by another
    history, those segments are that history's WAL. It now fetches history files only: the
    put-back database needs no WAL but its own. Here the archive's segment with the put-back
    database's checkpoint is another segment's bytes (what a reused id allows): the undo
    failed, exit 3, before."""
    target_xid = env.commit("insert into t values (11, 'target')")
    env.commit("insert into t values (12, 'after')")
    before = env.rows()
    _restore(env, target_xid)
    aside = next(env.cluster_dir.glob("data.previous-*"))
    control = subprocess.run([find_binaries(None).path("pg_controldata"), str(aside)],
                             capture_output=True, text=True, check=True,
                             env={**os.environ, "LC_ALL": "C"}).stdout
    lsn = re.search(r"Latest checkpoint location:\s+(\S+)", control)
    tli = re.search(r"Latest checkpoint's TimeLineID:\s+(\d+)", control)
    assert lsn is not None and tli is not None
    hi, lo = (int(x, 16) for x in lsn.group(1).split("/"))
    segment = f"{int(tli.group(1)):08X}{hi:08X}{lo >> 24:08X}"
    archive = env.dir / ".spectral" / "staging" / "backups" / "wal"
    other = next(p for p in sorted(archive.iterdir()) if len(p.name) == 24 and p.name != segment)
    shutil.copyfile(other, archive / segment)
    env.ok("dr", "restore", "--undo", "--yes")
    assert env.rows() == before
