#!/usr/bin/env python3
"""The BENCH-NOTES calibration data set for the compare: `pgbench -i -s 70` (7 M rows in
`pgbench_accounts`, ~1 GB), a physical copy of it, then in one run: the floor, spectral's
fingerprint with content, spectral's compare (live vs live, and a stored snapshot vs the copy),
and reladiff 0.6.0 on every pgbench table that has a primary key (`pgbench_history` is empty
after `-i` and has none).

    .venv/bin/python bench/verify_pgbench.py --scale 70
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

import reladiff_baseline as reladiff
from common import machine, new_cluster, physical_copy, workspace
from spectral.pg.binaries import find_binaries
from spectral.runner import run
from spectral.verify import content
from spectral.verify.fingerprint import Options, save, take
from verify import cli_rss, report, scan_with, timed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=70)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    bins = find_binaries(None)
    out: dict = {"machine": machine(), "postgres": bins.version, "pgbench_scale": args.scale,
                 "workers": args.workers}
    password = secrets.token_hex(12)
    with workspace() as root:
        src = new_cluster(bins, root, "source", password)
        src.start()
        copy = None
        try:
            run([bins.path("pgbench"), "-i", "-q", "-s", str(args.scale), "-d",
                 src.conninfo()], timeout=3600)
            with src.connect() as conn:
                conn.execute("vacuum analyze")
                out["database_mb"] = round(conn.execute(
                    "select pg_database_size('postgres')").fetchone()[0] / 1e6)  # type: ignore[index]
            dsn = src.conninfo()
            scan_with(dsn, content.Method.FLOOR, args.workers, ("public",))
            out["floor_s"] = round(scan_with(dsn, content.Method.FLOOR, args.workers,
                                             ("public",)), 2)
            secs, _ = timed(lambda: take(dsn, Options(("public",), content=True,
                                                      workers=args.workers)))
            out["fingerprint_content_s"] = round(secs, 2)
            copy = physical_copy(bins, src, root)
            env = {**os.environ, "COLUMNS": "200"}
            spectral = str(Path(sys.executable).parent / "spectral")
            snap = Path(root) / "source-fingerprint.json"
            save(take(dsn, Options(("public",), content=True, workers=args.workers)), snap)
            secs, code, rss = cli_rss([spectral, "--json", "dr", "compare", str(snap),
                                       copy.conninfo(), "--content"], env)
            out["spectral_compare_snapshot_vs_copy"] = {"seconds": round(secs, 2),
                                                        "exit": code, "peak_rss_mb": rss}
            secs, code, rss = cli_rss([spectral, "--json", "dr", "compare", dsn,
                                       copy.conninfo(), "--content", "--schemas", "public"],
                                      env)
            out["spectral_compare_copy"] = {"seconds": round(secs, 2), "exit": code,
                                            "peak_rss_mb": rss}
            tables, skipped = reladiff.tables_of(dsn, ("public",))   # pgbench_history: no key
            out["reladiff"] = {**reladiff.run(dsn, copy.conninfo(), tables),
                               "tables_left_out": skipped}
        finally:
            if copy is not None:
                copy.stop()
            src.stop()
    report(out, password)


if __name__ == "__main__":
    main()
