#!/usr/bin/env python3
"""Cost curves: every operation of a nightly drill at three sizes of the reference database,
each against its floor measured in the same run, and the peak RSS of every spectral process.

    .venv/bin/python bench/curves.py [--sizes 0.1,1,10] [--out bench/out/curves-1.json]
    .venv/bin/python bench/curves.py --report bench/out/curves-1.json bench/out/curves-2.json

For each size, in a fresh folder with the embedded default environment (`spectral local up`,
PostgreSQL 18, WAL archived), through the real command line as a user runs it:

- seed: `spectral db seed --scale N`; floor: the same rows generated beforehand into files and
  loaded by server-side `COPY FROM` in as many sessions, with the same deferred index builds;
- full backup: `spectral dr backup`; floor: `pg_basebackup -Fp -X fetch -c fast` alone;
- restore of latest: `spectral dr restore --latest`; floor: `cp -a` of the backup + PostgreSQL's
  own recovery of the same archived WAL + promotion; both cold, best of 2 rounds;
- fingerprint: `dr fingerprint --content` (library call and process); floor: a scan reading every
  column of every row, same sessions and TID ranges;
- compare: `dr compare SNAPSHOT COPY --content` (the drill's way); baseline: reladiff 0.6.0 on the
  same two databases and tables, through their Unix sockets, its time kept only when every
  table was compared whole (bench/reladiff.py), per table; then one row changed in the copy,
  which both must find (not run at 10 GB: extrapolated from its rate at 1 GB);
- drill: `dr drill functional --content`; floor: the restore's floor, two floor scans and
  deleting the floor's copy (an immediate stop and unlinking its files); its overhead is its wall
  time less its restore and its two scans.

Plus one large table hashed by TID ranges with one session and with every core. The report
mode prints the tables for bench/RESULTS.md and writes bench/curves.svg.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from queue import Empty, Queue
from typing import Any

from psycopg.conninfo import make_conninfo

import reladiff_baseline as reladiff
import spectral
from common import machine
from restore import _promoted, cold
from spectral.config.load import load_config
from spectral.environment import open_environment
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.conn import connect
from spectral.pg.osuser import give_to_server, make_owned_dir, server_identity
from spectral.refdb.migrate import migrate
from spectral.refdb.seed import Counts, _build_indexes, _drop_plain_indexes, plan_parts
from spectral.runner import run
from spectral.verify import content
from spectral.verify.compare import Outcome, compare
from spectral.verify.fingerprint import Options, load, take
from spectral.waits import wait_until
from verify import scan_with

SCALES = {"0.1": 8, "1": 80, "10": 800}       # scale 8 is 106 MB on disk, linear in the scale
SCHEMAS = ("auth", "core", "worlds", "platform")
SPECTRAL = str(Path(sys.executable).parent / "spectral")
WORKERS = len(os.sched_getaffinity(0))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Bench:
    """One size: a folder holding a spectral environment, and the commands run in it."""

    def __init__(self, scale: int) -> None:
        self.scale = scale
        self.root = Path(tempfile.mkdtemp(prefix=f"spectral-curves-{scale}-", dir="/tmp"))
        self.root.chmod(0o755)
        # the spectral this script imported (a worktree's src/), whatever the folder: the
        # command line runs in `root`, where a relative PYTHONPATH (src:bench) names nothing
        # and the venv's installed tree (/work/main/src) would be measured instead
        self.env = {**os.environ, "COLUMNS": "200", "PYTHONPATH": os.pathsep.join(
            [str(Path(spectral.__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}

    def cli(self, *args: str) -> dict[str, Any]:
        """Run `spectral ARGS` in the folder: seconds, exit code, peak RSS (MB), stdout.

        The RSS is GNU time's (`%M`): wait4() of a child of this process would also count
        this process's own memory at the fork (Linux keeps the high-water mark across exec),
        so the spectral process is started from `time`, a small process, instead."""
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
                tempfile.NamedTemporaryFile("r") as rss_file:
            started = time.monotonic()
            proc = subprocess.run(["/usr/bin/time", "-q", "-f", "%M", "-o", rss_file.name,
                                   SPECTRAL, *args], cwd=self.root, env=self.env, stdout=out,
                                  stderr=err, stdin=subprocess.DEVNULL, check=False)
            seconds = time.monotonic() - started
            code = proc.returncode
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
            rss = int(rss_file.read().split()[-1]) // 1024
        global _peak_seen
        _peak_seen = max(_peak_seen, rss)
        if code != 0:
            log(f"spectral {' '.join(args)}: exit {code}: {stderr.strip()[-300:]}")
        return {"seconds": round(seconds, 2), "exit": code, "peak_rss_mb": rss,
                "stdout": stdout}

    def provider(self) -> Any:
        here = os.getcwd()
        os.chdir(self.root)
        try:
            return open_environment(load_config(None)).provider
        finally:
            os.chdir(here)

    def close(self) -> None:
        self.cli("dr", "teardown", "--all")
        self.cli("local", "down")
        shutil.rmtree(self.root, ignore_errors=True)


_peak_seen = 0   # MB, the largest peak RSS of any spectral process of the run


def measure(scale: int, with_reladiff: bool) -> dict[str, Any]:
    b = Bench(scale)
    out: dict[str, Any] = {"scale": scale}
    try:
        up = b.cli("local", "up")
        assert up["exit"] == 0, up
        p = b.provider()
        dsn = p.local.cluster().conninfo()
        log(f"scale {scale}: seed, and its floor, in a scratch cluster")
        out["seed"], out["seed_floor"] = seed_pair(b, p.bins, scale)
        log(f"scale {scale}: the environment's own seed (not timed)")
        assert b.cli("db", "seed", "--scale", str(scale))["exit"] == 0
        with connect(dsn) as conn:
            conn.execute("vacuum analyze")
            conn.execute("checkpoint")
            out["database_mb"] = round(conn.execute(
                "select pg_database_size(current_database())").fetchone()[0] / 1e6)  # type: ignore[index]
            out["heap_mb"] = round(int(conn.execute(
                "select sum(pg_relation_size(c.oid)) from pg_class c join pg_namespace n on "
                "n.oid = c.relnamespace where c.relkind = 'r' and n.nspname = any(%s)",
                (list(SCHEMAS),)).fetchone()[0]) / 1e6)  # type: ignore[index]
        log(f"scale {scale}: {out['database_mb']} MB; backups (cold)")
        cold()
        out["backup"] = strip(b.cli("dr", "backup"))
        # the seed's WAL, before the backup, is needed by nothing: room on the disk at 10 GB
        assert b.cli("dr", "expire", "--keep", "1", "--yes")["exit"] == 0
        cold()
        out["backup_floor"] = basebackup_floor(b, dsn)
        log(f"scale {scale}: backup {out['backup']['seconds']} s, floor "
            f"{out['backup_floor']['seconds']} s")
        with connect(dsn) as conn:   # some WAL for the restore to replay
            conn.execute("update worlds.returns set status = status where id % 100 = 0")
        log(f"scale {scale}: fingerprint")
        scan_with(dsn, content.Method.FLOOR, WORKERS, SCHEMAS)   # warm the cache alike
        out["fingerprint_floor_s"] = round(scan_with(dsn, content.Method.FLOOR, WORKERS,
                                                     SCHEMAS), 2)
        started = time.monotonic()
        take(dsn, Options(SCHEMAS, content=True, workers=WORKERS))
        out["fingerprint_library_s"] = round(time.monotonic() - started, 2)
        snap = b.root / "snapshot.json"
        out["fingerprint"] = strip(b.cli("dr", "fingerprint", "--content", "--out", str(snap)))
        # cold: what a scan costs when the database is larger than memory (the disk's rate)
        cold()
        out["fingerprint_floor_cold_s"] = round(scan_with(dsn, content.Method.FLOOR, WORKERS,
                                                          SCHEMAS), 2)
        cold()
        started = time.monotonic()
        take(dsn, Options(SCHEMAS, content=True, workers=WORKERS))
        out["fingerprint_cold_s"] = round(time.monotonic() - started, 2)
        out["large_table"] = large_table(dsn)
        log(f"scale {scale}: restores (cold)")
        rounds = []
        instance = None
        for i in range(2):
            floor = restore_floor(b, p)
            cold()
            r = b.cli("--json", "dr", "restore", "--latest")
            instance = json.loads(r["stdout"]) if r["exit"] == 0 else None
            if i == 0 and instance:
                b.cli("dr", "teardown", instance["id"])
            rounds.append({"floor": floor, "spectral": strip(r)})
        out["restore_rounds"] = rounds
        assert instance is not None, "the restore failed"
        log(f"scale {scale}: compare snapshot vs restored copy")
        out["compare"] = strip(b.cli("--json", "dr", "compare", str(snap), instance["dsn"],
                                     "--content"))
        out["compare_library_s"] = drills_compare(snap, instance["dsn"])
        log(f"scale {scale}: compare process {out['compare']['seconds']} s, in the drill's "
            f"process {out['compare_library_s']} s")
        if with_reladiff:
            out["reladiff"] = baseline(b, scale, dsn, instance["dsn"], snap)
        b.cli("dr", "teardown", "--all")
        log(f"scale {scale}: drill")
        d = b.cli("--json", "dr", "drill", "functional", "--content")
        drill = json.loads(d["stdout"]) if d["stdout"].strip() else {}
        t = drill.get("timings", {})
        scans = t.get("snapshot_scan", 0) + t.get("verify_scan", 0)
        out["drill"] = {**strip(d), "outcome": drill.get("outcome"), "timings": t,
                        "overhead_s": round(d["seconds"] - t.get("restore", 0) - scans, 2)}
    finally:
        b.close()
    return out


# one row of the copy changed, and changed back, to see that both tools find it
CHANGED = ("worlds.line_items",
           "update worlds.line_items set amount = amount + 0.01 where id = 1000",
           "update worlds.line_items set amount = amount - 0.01 where id = 1000")


def baseline(b: Bench, scale: int, dsn: str, copy: str, snap: Path) -> dict[str, Any]:
    """reladiff on the tables the snapshot holds, source against the restored copy, through
    both Unix sockets. A table it did not compare whole leaves no time (bench/reladiff.py);
    then one row changed in the copy must be found by reladiff and by `dr compare`."""
    log(f"scale {scale}: reladiff")
    tables, skipped = reladiff.tables_of(dsn, tuple(load(snap).schemas))
    rd = {**reladiff.run(dsn, copy, tables), "tables_left_out": skipped}
    if rd["failed"]:
        log(f"scale {scale}: reladiff FAILED, no time kept: {rd['failed']}")
    else:
        log(f"scale {scale}: reladiff {rd['seconds']} s, {rd['rows_compared']} rows")
    name, change, undo = CHANGED
    table = next(t for t in tables if t.name == name)
    missed = reladiff.finds(dsn, copy, table, change, undo)
    rd["finds_a_changed_row"] = missed or "yes"
    if missed:   # a baseline that finds nothing is no baseline
        rd["failed"][name + " (one row changed)"] = missed
        rd["seconds"] = None
    with connect(copy) as conn:
        conn.execute(change)
    try:
        found = b.cli("--json", "dr", "compare", str(snap), copy, "--content")["exit"]
    finally:
        with connect(copy) as conn:
            conn.execute(undo)
    rd["spectral_finds_a_changed_row"] = "yes" if found == 1 else f"exit {found}"
    return rd


def strip(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if k != "stdout"}


def seed_pair(b: Bench, bins: Any, scale: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """`spectral db seed` and its floor into the same scratch cluster (WAL not archived: at
    10 GB the archive of two loads would not fit beside the rest), which is removed after."""
    scratch = Path(tempfile.mkdtemp(prefix="seed-", dir=b.root))
    scratch.chmod(0o755)
    d = make_owned_dir(scratch / "c", 0o755)
    cluster = Cluster(bins, d / "data", socket_dir_for(d / "run"), free_port(), d / "pg.log")
    cluster.initdb(conf={"wal_level": "replica"})
    cluster.start()
    try:
        cfg = scratch / "spectral.toml"
        cfg.write_text('[environments.scratch]\nprovider = "local"\n'
                       'dsn = "env:SPECTRAL_CURVES_DSN"\n')
        b.env["SPECTRAL_CURVES_DSN"] = cluster.conninfo()
        ours = strip(b.cli("--config", str(cfg), "db", "seed", "--scale", str(scale)))
        assert ours["exit"] == 0, ours
        return ours, seed_floor(b, cluster.conninfo(), scale)
    finally:
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def seed_floor(b: Bench, dsn: str, scale: int) -> dict[str, Any]:
    """The seed's own parts written to files first (not timed), then loaded into a fresh
    database the seed's way (session_replication_role = replica, plain indexes dropped and
    rebuilt by the same code), but by the server reading the files: no generation, no
    transfer. What is left is PostgreSQL's COPY and index builds."""
    files = make_owned_dir(b.root / "copy-files", 0o755)
    counts = Counts(scale)
    parts = []
    for i, part in enumerate(plan_parts(counts, 2)):
        f = files / f"part{i}.copy"
        with f.open("w") as fh:
            for a in range(part.a, part.b, 20_000):
                fh.write(part.spec.chunk(counts, a, min(a + 20_000, part.b)))
        parts.append((part, f))
    give_to_server(files)
    with connect(dsn) as conn:
        conn.execute("create database copy_floor")
    floor_dsn = make_conninfo(dsn, dbname="copy_floor")
    try:
        with connect(floor_dsn) as conn:
            migrate(conn)
            deferred = _drop_plain_indexes(conn)
        os.sync()
        queue: Queue[tuple[Any, Path]] = Queue()
        for item in parts:
            queue.put(item)
        started = time.monotonic()

        def load() -> None:
            with connect(floor_dsn, autocommit=False) as conn:
                conn.execute("set session_replication_role = replica")
                conn.execute("set synchronous_commit = off")
                while True:
                    try:
                        part, f = queue.get_nowait()
                    except Empty:
                        break
                    cols = ", ".join(part.spec.columns)
                    conn.execute(f"copy {part.spec.table} ({cols}) from '{f}'")
                conn.commit()

        threads = [threading.Thread(target=load) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        copied = time.monotonic() - started
        _build_indexes(floor_dsn, deferred, 2)
        seconds = time.monotonic() - started
        with connect(floor_dsn) as conn:
            loaded = conn.execute("select count(*) from worlds.returns").fetchone()[0]  # type: ignore[index]
        with connect(dsn) as conn:
            expected = conn.execute("select count(*) from worlds.returns").fetchone()[0]  # type: ignore[index]
        assert loaded == expected, (loaded, expected)
    finally:
        with connect(dsn) as conn:
            conn.execute("drop database if exists copy_floor")
        shutil.rmtree(files, ignore_errors=True)
    return {"seconds": round(seconds, 2), "copy_seconds": round(copied, 2)}


def basebackup_floor(b: Bench, dsn: str) -> dict[str, Any]:
    p = b.provider()
    dest = make_owned_dir(b.root / "basebackup", 0o700)
    started = time.monotonic()
    run([str(p.bins.path("pg_basebackup")), "-D", str(dest), "-Fp", "-X", "fetch", "-c", "fast",
         "-d", dsn], timeout=7200, run_as=server_identity())
    seconds = time.monotonic() - started
    shutil.rmtree(dest, ignore_errors=True)
    return {"seconds": round(seconds, 2)}


def restore_floor(b: Bench, p: Any) -> dict[str, Any]:
    """The physical floor of a restore of the latest point: `cp -a` of the newest backup, then
    PostgreSQL's own recovery of the same archived WAL (restore_command = cp) up to its end and
    promotion. Without the replay the floor would leave out work any restore to the latest
    point must do (at 10 GB, replaying the update made after the backup reads cold pages)."""
    p.flush_archive()   # the WAL both restores replay is in the archive before either starts
    backup = p.backups()[-1]
    src = p.repo.backup_dir(backup.id)
    dest = make_owned_dir(b.root / "floor", 0o755)
    data = dest / "data"
    cold()
    started = time.monotonic()
    subprocess.run(["cp", "-a", str(src), str(data)], check=True)
    copied = time.monotonic() - started
    # spectral.conf (included by postgresql.conf) replaces the source's: no archiving into
    # the source's archive, recovery from it instead
    (data / "spectral.conf").write_text(
        f"restore_command = 'cp \"{p.repo.archive}/%f\" \"%p\"'\n"
        "recovery_target_action = 'promote'\n")
    (data / "recovery.signal").touch()
    give_to_server(data)
    c = Cluster(p.bins, data, socket_dir_for(dest / "run"), free_port(), dest / "pg.log")
    c.start(timeout=3600)
    wait_until(lambda: _promoted(c), timeout=3600, interval=0.02, what="promotion")
    seconds = time.monotonic() - started
    # deleting the copy is part of every drill's floor: the server stopped as a copy about to
    # go is (immediately) and its files unlinked
    started = time.monotonic()
    c.stop(discard=True)
    shutil.rmtree(dest, ignore_errors=True)
    deleted = time.monotonic() - started
    return {"seconds": round(seconds, 2), "cp_a_seconds": round(copied, 2),
            "delete_seconds": round(deleted, 2)}


def drills_compare(snap: Path, dsn: str) -> float:
    """The compare a drill makes, in its own process: the restored copy fingerprinted with
    the snapshot's schemas and content, then compared with the snapshot."""
    doc = load(snap)
    started = time.monotonic()
    restored = take(dsn, Options(tuple(doc.schemas), content=True, workers=WORKERS))
    outcome = compare(doc, restored).outcome
    seconds = time.monotonic() - started
    assert outcome is Outcome.MATCH, outcome
    return round(seconds, 2)


def large_table(dsn: str) -> dict[str, Any]:
    """The largest table alone, content-hashed by TID ranges: one session, then every core."""
    with connect(dsn, autocommit=False) as conn:
        conn.execute("set transaction isolation level repeatable read, read only")
        plans = content.plan_tables(conn, list(SCHEMAS), True, {})
        big = max(plans, key=lambda p: p.blocks)
        big.last_change = None
        conn.rollback()
    times = {}
    content.scan(dsn, None, [big], workers=WORKERS)   # warm
    for n in (1, WORKERS):
        started = time.monotonic()
        facts = content.scan(dsn, None, [big], workers=n)
        times[n] = time.monotonic() - started
    return {"table": big.qualified, "mb": round(big.blocks * 8192 / 1e6),
            "ranges": len(content.split(big)), "rows": facts[big.qualified].rows,
            "one_session_s": round(times[1], 2), f"{WORKERS}_sessions_s": round(times[WORKERS], 2),
            "speed_up": round(times[1] / times[WORKERS], 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="0.1,1,10", help="GB, of 0.1, 1, 10")
    ap.add_argument("--out", type=Path, help="write the run as JSON here too")
    ap.add_argument("--report", nargs="+", type=Path, help="runs to tabulate and chart")
    args = ap.parse_args()
    if args.report:
        from curves_report import report

        report(args.report)
        return
    reladiff.ensure()
    started = time.monotonic()
    result: dict[str, Any] = {"machine": machine(), "workers": WORKERS,
                              "command": " ".join(sys.argv), "sizes": {}}
    for size in args.sizes.split(","):
        result["sizes"][size] = measure(SCALES[size], with_reladiff=size != "10")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=2))
    result["wall_s"] = round(time.monotonic() - started)
    result["peak_rss_any_spectral_mb"] = _peak_seen
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
