"""Regression tests for issue 13's defects, continued: the incident tools, imports, the
stream, and processes (locks, orphans, SIGKILL, two drills at once). Each was reproduced on the
code before it and fails there."""

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

from conftest import _processes_under, local_provider, spectral
from spectral.errors import RefusedError
from spectral.pg.binaries import PgBinaries
from spectral.pg.conn import connect
from spectral.providers.local.provider import LocalProvider


@pytest.fixture
def env(work_dir: Path, bins: PgBinaries) -> Iterator[LocalProvider]:
    with local_provider(work_dir, bins, "items") as provider:
        yield provider


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
    # a .partial: pg_receivewal resumes at its start, which this small server has flushed
    (stream / "000000010000000000000001.partial").write_bytes(b"")
    moved = align_stream_dir(env.local.cluster(), stream)
    assert moved == ["00000006000000000000000F.partial"]
    assert (stream / "abandoned" / "00000006000000000000000F.partial").exists()
    assert (stream / "000000010000000000000001.partial").exists()


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


@pytest.mark.server
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


@pytest.mark.server
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
    _parse(lines, scan)
    assert scan.heap[729] == [("delete", "1663/5/16384", 2, 7)]
    assert scan.heap[728] == [("update", "1663/5/16384", 2, 5)]
    assert scan.heap[730] == [("delete", "1663/5/16384", 2, 9)]
    assert scan.heap[731] == [("update", "1663/5/16384", 2, 4)]
