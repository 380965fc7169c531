"""Continuous WAL: synchronous streaming gives RPO 0 through a kill -9 of the source; the live
RPO is reported; retention never removes what a kept backup needs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import SPECTRAL, _processes_under, bare_local, spectral
from spectral.pg.cluster import proc_alive
from spectral.pg.conn import connect
from spectral.providers.base import Backup, BackupKind, Verification
from spectral.providers.local.expire import plan_expire
from spectral.waits import wait_until


def _backup(i: int, kind: BackupKind = BackupKind.FULL, parent: str | None = None) -> Backup:
    t = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=i)
    return Backup(f"b{i}", kind, parent, f"0/{i}000000", f"0/{i}000100", t, t, 1, 1, 1.0, "18",
                  Verification.VERIFIED if kind is BackupKind.FULL else Verification.NOT_VERIFIED)


def test_expire_plan_keeps_chains_and_window() -> None:
    backups = [_backup(1), _backup(2), _backup(3, BackupKind.INCREMENTAL, "b2"), _backup(4),
               _backup(5, BackupKind.INCREMENTAL, "b4")]
    plan = plan_expire(backups, keep=1, window_days=None)
    assert plan.keep == ["b4", "b5"] and plan.remove == ["b1", "b2", "b3"]
    now = datetime(2026, 1, 6, tzinfo=UTC)
    plan = plan_expire(backups, keep=1, window_days=2.5, now=now)   # horizon: Jan 3, 12:00
    assert plan.keep == ["b2", "b3", "b4", "b5"] and plan.remove == ["b1"]
    assert plan.oldest_kept_start_lsn == "0/2000000"
    # b4 and b5 belong to a timeline an undone restore abandoned: --keep 1 keeps b2 (and its
    # incremental), from which the live timeline can be restored, not b4
    plan = plan_expire(backups, keep=1, window_days=None, lineage={"b1", "b2", "b3"})
    assert plan.keep == ["b2", "b3"] and plan.remove == ["b1", "b4", "b5"]


@pytest.mark.server
def test_synchronous_stream_loses_nothing_through_kill_9(work_dir: Path) -> None:
    bare_local(work_dir)
    try:
        _rpo_zero(work_dir)
    finally:
        spectral("dr", "teardown", "--all", cwd=work_dir)
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


def _rpo_zero(work_dir: Path) -> None:
    assert spectral("dr", "backup", cwd=work_dir).returncode == 0
    info = json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)
    stream = subprocess.Popen([SPECTRAL, "dr", "wal", "stream", "--synchronous", "--seconds",
                               "60"], cwd=work_dir, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        def synchronous() -> bool:
            with connect(info["dsn"]) as conn:
                row = conn.execute("select sync_state from pg_stat_replication where "
                                   "application_name = 'spectral_stream'").fetchone()
            return bool(row and row[0] == "sync")

        wait_until(synchronous, timeout=30, what="synchronous stream")
        status = json.loads(spectral("dr", "wal", "status", "--json", cwd=work_dir).stdout)
        assert status["stream"]["sync_state"] == "sync"
        with connect(info["dsn"]) as conn:
            conn.execute("create table core.rpo_probe (n int)")
            for n in range(50):
                conn.execute("insert into core.rpo_probe values (%s)", (n,))
        os.kill(info["pid"], signal.SIGKILL)      # the source dies with no warning
    finally:
        stream.send_signal(signal.SIGINT)
        stream.communicate(timeout=60)
    # gone, or a zombie: the command line runs in this process, so the server it started is
    # this process's child until reaped
    wait_until(lambda: not proc_alive(info["pid"]), timeout=10, what="exit")
    with contextlib.suppress(ChildProcessError):
        os.waitpid(info["pid"], 0)
    res = spectral("dr", "restore", "--latest", "--json", cwd=work_dir)
    assert res.returncode == 0, res.stderr
    inst = json.loads(res.stdout)
    with connect(inst["dsn"]) as conn:
        assert conn.execute("select count(*) from core.rpo_probe").fetchone() == (50,)
    assert spectral("dr", "teardown", "--all", cwd=work_dir).returncode == 0
    # the crashed cluster starts again, and its commits no longer wait for a standby
    assert spectral("local", "up", cwd=work_dir).returncode == 0
    with connect(info["dsn"]) as conn:
        assert conn.execute("show synchronous_standby_names").fetchone() == ("",)
        conn.execute("insert into core.rpo_probe values (99)")


@pytest.mark.server
def test_expire_removes_old_backups_and_wal_but_restores_still_work(work_dir: Path) -> None:
    bare_local(work_dir)
    try:
        ids = []
        for _ in range(3):
            ids.append(json.loads(spectral("dr", "backup", "--json", cwd=work_dir).stdout)["id"])
            time.sleep(0.01)   # backup ids are per millisecond
        every = [b["id"] for b in json.loads(spectral("dr", "backups", "--json",
                                                      cwd=work_dir).stdout)["backups"]]
        assert every[-3:] == ids
        res = spectral("dr", "expire", "--keep", "1", "--dry-run", "--json", cwd=work_dir)
        assert json.loads(res.stdout)["remove"] == every[:-1]
        res = spectral("dr", "expire", "--keep", "1", cwd=work_dir)   # no terminal, no --yes
        assert res.returncode == 2
        res = spectral("dr", "expire", "--keep", "1", "--yes", "--json", cwd=work_dir)
        assert res.returncode == 0, res.stderr
        left = json.loads(spectral("dr", "backups", "--json", cwd=work_dir).stdout)
        assert [b["id"] for b in left["backups"]] == ids[2:]
        assert not left["window"]["gaps"]
        res = spectral("dr", "restore", "--latest", "--json", cwd=work_dir)
        assert res.returncode == 0, res.stderr
    finally:
        spectral("dr", "teardown", "--all", cwd=work_dir)
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


@pytest.mark.server
def test_stream_resumes_after_an_in_place_restore(work_dir: Path) -> None:
    """An in-place restore replaces the data directory and the stream's replication slot with
    it: the supervisor creates the slot again and streams from the restored database."""
    info = bare_local(work_dir)
    stream = subprocess.Popen([SPECTRAL, "dr", "wal", "stream", "--seconds", "90"],
                              cwd=work_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)

    def streaming() -> bool:
        with connect(info["dsn"]) as conn:
            return conn.execute("select 1 from pg_stat_replication where application_name "
                                "= 'spectral_stream'").fetchone() is not None

    try:
        wait_until(streaming, timeout=30, what="the stream")
        res = spectral("dr", "restore", "--latest", "--in-place", "--yes", cwd=work_dir)
        assert res.returncode == 0, res.stderr
        wait_until(streaming, timeout=60, max_interval=1.0, what="the stream to resume")
    finally:
        stream.send_signal(signal.SIGINT)
        stream.communicate(timeout=60)
        spectral("dr", "restore", "--discard-previous", "--yes", cwd=work_dir)
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []
