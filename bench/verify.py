#!/usr/bin/env python3
"""Verification speed and memory on the ~1 GB reference database, all in one run:

  1. spectral's full fingerprint with --content (the `spectral dr fingerprint --content` process,
     peak RSS measured);
  2. the floor: a scan reading every column of every row (`count(*) ... where t is not null`)
     with the same snapshot, the same TID ranges and the same number of sessions;
  3. plain `count(*)` of every table, same parallelism (reads no column; for reference);
  4. `pg_dump | sha256sum` of the same database;
  5. reladiff 0.6.0 (the data-diff baseline) comparing every protected table of the database
     with its physical copy, all columns, two threads per database, through the Unix sockets,
     with no time when any table was not compared whole (bench/reladiff.py);
  6. spectral comparing the same two databases (`dr compare A B --content`).

    .venv/bin/python bench/verify.py --scale 110
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import reladiff_baseline as reladiff
from common import machine, physical_copy, seeded_cluster, workspace
from spectral.pg.binaries import find_binaries
from spectral.verify import content
from spectral.verify.fingerprint import Options, take

PROTECTED = ("core", "worlds", "platform")


def timed(fn):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    result = fn()
    return time.monotonic() - started, result


def cli_rss(argv: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """Run a command; return seconds, exit code and the peak RSS of the process in MB."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.monotonic() - started, os.waitstatus_to_exitcode(status), usage.ru_maxrss // 1024


def scan_with(conninfo: str, method: content.Method, workers: int,
              schemas: tuple[str, ...] = PROTECTED) -> float:
    from spectral.pg.conn import connect

    with connect(conninfo, autocommit=False) as conn:
        conn.execute("set transaction isolation level repeatable read, read only")
        snap = conn.execute("select pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
        plans = content.plan_tables(conn, list(schemas), False, {})
        for p in plans:
            p.last_change = None
        seconds, _ = timed(lambda: content.scan(conninfo, snap, plans, workers=workers,
                                                method=method))
        conn.rollback()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=110)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--skip-reladiff", action="store_true")
    args = ap.parse_args()
    bins = find_binaries(None)
    out: dict = {"machine": machine(), "postgres": bins.version, "scale": args.scale,
                 "workers": args.workers}
    with workspace() as root:
        src, password = seeded_cluster(bins, root, args.scale)
        copy = None
        try:
            with src.connect() as conn:
                out["database_mb"] = round(conn.execute(
                    "select pg_database_size('postgres')").fetchone()[0] / 1e6)  # type: ignore[index]
            dsn = src.conninfo()
            # warm the cache the same way for everyone: one floor scan first
            scan_with(dsn, content.Method.FLOOR, args.workers)
            out["floor_s"] = round(scan_with(dsn, content.Method.FLOOR, args.workers), 2)
            out["count_star_s"] = round(scan_with(dsn, content.Method.COUNT, args.workers), 2)
            opts = Options(PROTECTED, content=True, workers=args.workers)
            secs, _doc = timed(lambda: take(dsn, opts))
            out["fingerprint_content_s"] = round(secs, 2)
            env = {**os.environ, "COLUMNS": "200"}
            spectral = str(Path(sys.executable).parent / "spectral")
            secs, code, rss = cli_rss([spectral, "--json", "dr", "compare", dsn, dsn,
                                       "--content", "--workers", str(args.workers)], env)
            out["cli_self_compare"] = {"seconds": round(secs, 2), "exit": code,
                                       "peak_rss_mb": rss}
            secs, code, rss = cli_rss(["bash", "-c", f"{bins.path('pg_dump')} '{dsn}' | "
                                                    f"sha256sum > /dev/null"], env)
            out["pg_dump_sha256_s"] = round(secs, 2)
            copy = physical_copy(bins, src, root)
            # the drill's way: the source's fingerprint is a stored snapshot, the restore is live
            snap = Path(root) / "source-fingerprint.json"
            cfg = Path(root) / "spectral.toml"
            cfg.write_text('[environments.bench]\nprovider = "local"\n'
                           'dsn = "env:SPECTRAL_BENCH_DSN"\n')
            secs, code, rss = cli_rss([spectral, "--config", str(cfg), "dr", "fingerprint",
                                       "--content", "--out", str(snap), "--workers",
                                       str(args.workers)], {**env, "SPECTRAL_BENCH_DSN": dsn})
            out["snapshot_of_source"] = {"seconds": round(secs, 2), "exit": code,
                                         "peak_rss_mb": rss}
            secs, code, rss = cli_rss([spectral, "--json", "dr", "compare", str(snap),
                                       copy.conninfo(), "--content", "--workers",
                                       str(args.workers)], env)
            out["spectral_compare_snapshot_vs_copy"] = {"seconds": round(secs, 2),
                                                        "exit": code, "peak_rss_mb": rss}
            secs, code, rss = cli_rss([spectral, "--json", "dr", "compare", dsn,
                                       copy.conninfo(), "--content", "--workers",
                                       str(args.workers), "--schemas", ",".join(PROTECTED)],
                                      env)   # two DSNs: one schema list, said explicitly
            out["spectral_compare_copy"] = {"seconds": round(secs, 2), "exit": code,
                                            "peak_rss_mb": rss}
            if not args.skip_reladiff:
                tables, skipped = reladiff.tables_of(dsn, PROTECTED)
                out["reladiff"] = {**reladiff.run(dsn, copy.conninfo(), tables),
                                   "tables_left_out": skipped}
        finally:
            if copy is not None:
                copy.stop()
            src.stop()
    report(out, password)


def report(out: dict, password: str) -> None:
    """Add the same-run ratios and print the run, the password masked."""
    out["ratio_fingerprint_vs_floor"] = round(out["fingerprint_content_s"] / out["floor_s"], 2)
    if out.get("reladiff", {}).get("seconds") is not None:   # None: not every table compared
        out["ratio_reladiff_vs_spectral_compare_live"] = round(
            out["reladiff"]["seconds"] / out["spectral_compare_copy"]["seconds"], 1)
        out["ratio_reladiff_vs_spectral_compare_snapshot"] = round(
            out["reladiff"]["seconds"] / out["spectral_compare_snapshot_vs_copy"]["seconds"], 1)
    print(json.dumps(out, indent=2).replace(password, "********"))


if __name__ == "__main__":
    main()
