#!/usr/bin/env python3
"""Seed throughput: `spectral db seed` (library call, same code path) at a given scale, against
`pgbench -i` client-side generation on the same cluster in the same run, as a reference.

    .venv/bin/python bench/seed.py --scale 110 [--pgbench-scale 70]

Table data = heap size of the loaded tables (pg_relation_size, no indexes, no TOAST), measured
after the load; the time is the whole seed call (generation, COPY, index builds, sequences,
materialized view refresh).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

from spectral.pg.binaries import find_binaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.osuser import make_owned_dir
from spectral.refdb.migrate import migrate
from spectral.refdb.seed import seed
from spectral.runner import run

HEAP = ("select coalesce(sum(pg_relation_size(c.oid)), 0)::bigint, "
        "coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace where c.relkind = 'r' "
        "and n.nspname = any(%s)")


def sizes(cluster: Cluster, schemas: list[str]) -> tuple[int, int]:
    with cluster.connect() as conn:
        row = conn.execute(HEAP, (schemas,)).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=110)
    ap.add_argument("--pgbench-scale", type=int, default=70)
    args = ap.parse_args()
    bins = find_binaries(None)
    root = Path(tempfile.mkdtemp(prefix="spectral-bench-", dir="/tmp"))
    root.chmod(0o755)
    d = make_owned_dir(root / "c", 0o755)
    cluster = Cluster(bins, d / "data", socket_dir_for(d / "run"), free_port(), d / "pg.log")
    result: dict[str, object] = {"machine": f"{platform.node()} {platform.machine()}, "
                                            f"{len(__import__('os').sched_getaffinity(0))} cores",
                                 "postgres": bins.version}
    try:
        cluster.initdb(conf={"wal_level": "replica", "max_wal_size": "4GB",
                             "shared_buffers": "128MB"})
        cluster.start()
        with cluster.connect() as conn:
            migrate(conn)
        started = time.monotonic()
        res = seed(cluster.conninfo(), args.scale)
        elapsed = time.monotonic() - started
        heap, total = sizes(cluster, ["auth", "core", "worlds"])
        result["spectral_seed"] = {"scale": args.scale, "seconds": round(elapsed, 2),
                                   "heap_mb": round(heap / 1e6, 1),
                                   "with_indexes_mb": round(total / 1e6, 1),
                                   "copy_text_mb": round(res.bytes_sent / 1e6, 1),
                                   "heap_mb_per_s": round(heap / 1e6 / elapsed, 1),
                                   "phases_s": {k: round(v, 2) for k, v in res.phases.items()}}
        started = time.monotonic()
        run([bins.path("pgbench"), "-i", "-q", "-I", "dtg", "-s", str(args.pgbench_scale),
             "-h", str(cluster.socket_dir), "-p", str(cluster.port), "-U", "postgres",
             "postgres"], timeout=3600)
        elapsed = time.monotonic() - started
        heap, total = sizes(cluster, ["public"])
        result["pgbench_init"] = {"scale": args.pgbench_scale, "seconds": round(elapsed, 2),
                                  "heap_mb": round(heap / 1e6, 1),
                                  "heap_mb_per_s": round(heap / 1e6 / elapsed, 1)}
        ours = result["spectral_seed"]["heap_mb_per_s"]  # type: ignore[index]
        theirs = result["pgbench_init"]["heap_mb_per_s"]  # type: ignore[index]
        result["ratio_vs_pgbench"] = round(ours / theirs, 2)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
