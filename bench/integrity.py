#!/usr/bin/env python3
"""What a drill's physical check of its copy costs (issue 31, item 1), against its floors:
pg_amcheck alone (basic, and thorough: --heapallindexed --parent-check), pg_checksums --check
alone (on the stopped copy), and spectral's check as a drill runs it (the recovery log read
back, pg_amcheck, a clean stop, pg_checksums, relations named). The data: `pgbench -i` at the
scale that makes about --gb gigabytes, in a cluster with data checksums on. Everything runs on
a warm cache, one after the other, in the order printed.

    PYTHONPATH=src:bench .venv/bin/python bench/integrity.py --gb 1 [--plan]

Before anything starts it says the pgbench scale, the room it needs in /tmp (the cluster and
its pg_wal, max_wal_size 4GB: about 3x the data; it stops when /tmp has less) and a rough time
(--plan: only that); each step is logged with its time as it ends.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from common import command, machine, new_cluster, rough, workspace
from spectral.pg.binaries import find_binaries
from spectral.pg.cluster import Cluster
from spectral.pg.integrity import amcheck_argv, checksums_argv
from spectral.pg.osuser import server_identity
from spectral.providers.integrity import IntegrityState
from spectral.providers.local.integrity import ThrowawayIntegrity
from spectral.runner import run

MB_PER_SCALE = 15.0          # pgbench -i: ~15 MB of tables and indexes per scale unit
TIMEOUT = 4 * 3600.0         # any one step at 10 GB on a slow disk
# rough seconds per GB on 2 cores, warm (the 0.05 GB run is all fixed costs: these are
# estimates to plan a run by, not results): pgbench -i and its vacuum, pg_amcheck basic,
# thorough, pg_checksums; spectral's checks are those again (twice)
ROUGH_S_PER_GB = {"pgbench -i": 60.0, "pg_amcheck basic": 6.0, "pg_amcheck thorough": 20.0,
                  "pg_checksums": 4.0, "spectral basic": 10.0, "spectral thorough": 24.0}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def plan(gb: float) -> int:
    """The pgbench scale for `gb`; the room and a rough time said first; SystemExit when /tmp
    has not the room."""
    if not 0 < gb <= 100:
        raise SystemExit(f"--gb {gb:g}: expected more than 0 and at most 100")
    scale = max(1, round(gb * 1000 / MB_PER_SCALE))
    need = 3 * gb * 1e9 + 1e9
    free = shutil.disk_usage("/tmp").free
    total = sum(ROUGH_S_PER_GB.values()) * gb + 15
    log(f"--gb {gb:g}: pgbench scale {scale}; about {need / 1e9:.0f} GB of /tmp "
        f"({free / 1e9:.0f} GB free); rough time ~{rough(total)} (" + ", ".join(
            f"{k} ~{v * gb:.0f} s" for k, v in ROUGH_S_PER_GB.items()) + ")")
    if free < need:
        raise SystemExit(f"--gb {gb:g} needs about {need / 1e9:.0f} GB free in /tmp, "
                         f"{free / 1e9:.0f} GB are")
    return scale


def timed(what: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    value = what()
    return round(time.monotonic() - started, 3), value


def ours(bins: Any, cluster: Cluster, thorough: bool) -> tuple[float, dict[str, str]]:
    # a drill's copy has a log of its own: not pgbench's sessions, nor the earlier rounds'
    cluster.log_file.write_text("")
    cluster.start()
    check = ThrowawayIntegrity(bins, cluster, cluster.conninfo())

    def all_three() -> dict[str, str]:
        reports = {"recovery_log": check.recovery_log(),
                   "amcheck": check.amcheck(thorough=thorough), "checksums": check.checksums()}
        return {k: f"{r.state.value}: {r.detail} {list(r.findings)}"
                if r.state is not IntegrityState.SOUND else r.state.value
                for k, r in reports.items()}

    seconds, states = timed(all_three)
    assert set(states.values()) == {IntegrityState.SOUND.value}, states
    log(f"spectral's checks ({'thorough' if thorough else 'basic'}): {seconds} s")
    return seconds, states


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, required=True, help="about how big the database is")
    ap.add_argument("--plan", action="store_true", help="say the scale, the room and the time "
                                                        "it needs, and stop")
    args = ap.parse_args()
    scale = plan(args.gb)
    if args.plan:
        return
    bins = find_binaries(None)
    out: dict[str, Any] = {"machine": machine(), "postgres": bins.version, "gb": args.gb,
                           "pgbench_scale": scale, "command": command()}
    with workspace() as root:
        src = new_cluster(bins, root, "copy", secrets.token_hex(12))
        src.start()
        try:
            out["pgbench_init_s"], _ = timed(lambda: run(
                [bins.path("pgbench"), "-i", "-q", "-s", str(scale), "-d", src.conninfo()],
                timeout=TIMEOUT))
            log(f"pgbench -i -s {scale}: {out['pgbench_init_s']} s")
            with src.connect() as conn:
                conn.execute("vacuum analyze")
                size = conn.execute("select sum(pg_database_size(oid)) from pg_database")
                out["cluster_mb"] = round(float(size.fetchone()[0]) / 1e6)  # type: ignore[index]
            conn_params = conninfo_to_dict(src.conninfo())
            for level, thorough in (("basic", False), ("thorough", True)):
                seconds, res = timed(lambda t=thorough: run(
                    amcheck_argv(bins, conn_params, thorough=t), timeout=TIMEOUT, check=False))
                assert res.returncode == 0, res.stdout + res.stderr
                out[f"pg_amcheck_{level}_s"] = seconds
                log(f"pg_amcheck {level}: {seconds} s")
            src.stop(timeout=600)
            out["pg_checksums_s"], res = timed(lambda: run(
                checksums_argv(bins, src.data_dir), timeout=TIMEOUT, run_as=server_identity()))
            log(f"pg_checksums: {out['pg_checksums_s']} s")
            for level, thorough in (("basic", False), ("thorough", True)):
                out[f"spectral_{level}_s"], _ = ours(bins, src, thorough)
        finally:
            src.stop(timeout=60)
    for level in ("basic", "thorough"):
        floor = out[f"pg_amcheck_{level}_s"] + out["pg_checksums_s"]
        out[f"spectral_{level}_over_floor"] = round(out[f"spectral_{level}_s"] / floor, 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
