#!/usr/bin/env python3
"""What a drill's physical check of its copy costs (issue 31, item 1), against its floors:
pg_amcheck alone (basic, and thorough: --heapallindexed --parent-check), pg_checksums --check
alone (on the stopped copy), and spectral's check as a drill runs it (the recovery log read
back, pg_amcheck, a clean stop, pg_checksums, relations named). The data: `pgbench -i` at the
scale that makes about --gb gigabytes, in a cluster with data checksums on. Everything runs on
a warm cache, one after the other, in the order printed.

    .venv/bin/python bench/integrity.py --gb 1
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from common import machine, new_cluster, workspace
from spectral.pg.binaries import find_binaries
from spectral.pg.cluster import Cluster
from spectral.pg.integrity import amcheck_argv, checksums_argv
from spectral.pg.osuser import server_identity
from spectral.providers.integrity import IntegrityState
from spectral.providers.local.integrity import ThrowawayIntegrity
from spectral.runner import run

MB_PER_SCALE = 15.0          # pgbench -i: ~15 MB of tables and indexes per scale unit


def timed(what: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    value = what()
    return round(time.monotonic() - started, 3), value


def ours(bins: Any, cluster: Cluster, thorough: bool) -> tuple[float, dict[str, str]]:
    cluster.start()
    check = ThrowawayIntegrity(bins, cluster, cluster.conninfo())

    def all_three() -> dict[str, str]:
        reports = {"recovery_log": check.recovery_log(),
                   "amcheck": check.amcheck(thorough=thorough), "checksums": check.checksums()}
        return {k: r.state.value for k, r in reports.items()}

    seconds, states = timed(all_three)
    assert set(states.values()) == {IntegrityState.SOUND.value}, states
    return seconds, states


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, required=True, help="about how big the database is")
    args = ap.parse_args()
    bins = find_binaries(None)
    scale = max(1, round(args.gb * 1000 / MB_PER_SCALE))
    out: dict[str, Any] = {"machine": machine(), "postgres": bins.version, "gb": args.gb,
                           "pgbench_scale": scale}
    with workspace() as root:
        src = new_cluster(bins, root, "copy", secrets.token_hex(12))
        src.start()
        try:
            run([bins.path("pgbench"), "-i", "-q", "-s", str(scale), "-d", src.conninfo()],
                timeout=3600)
            with src.connect() as conn:
                conn.execute("vacuum analyze")
                size = conn.execute("select sum(pg_database_size(oid)) from pg_database")
                out["cluster_mb"] = round(float(size.fetchone()[0]) / 1e6)  # type: ignore[index]
            conn_params = conninfo_to_dict(src.conninfo())
            for level, thorough in (("basic", False), ("thorough", True)):
                seconds, res = timed(lambda t=thorough: run(
                    amcheck_argv(bins, conn_params, thorough=t), timeout=3600, check=False))
                assert res.returncode == 0, res.stdout + res.stderr
                out[f"pg_amcheck_{level}_s"] = seconds
            src.stop(timeout=120)
            out["pg_checksums_s"], res = timed(lambda: run(
                checksums_argv(bins, src.data_dir), timeout=3600, run_as=server_identity()))
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
