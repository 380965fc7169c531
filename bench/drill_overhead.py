"""A drill's own overhead (issue 32, item 3): the wall time of `spectral dr drill functional`
as a process, less what has a floor of its own: the restore (copy + PostgreSQL's replay and
start), the two content scans and deleting the copy. The physical checks of the copy
(pg_amcheck, pg_checksums: `integrity`) are shown on their own line: their floor is those
tools' time.

A small local environment: `spectral local up`, one table of 100 rows, one backup; then
--rounds drills, each one process.

    .venv/bin/python bench/drill_overhead.py --rounds 3 [--out bench/out/drill-overhead-N.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import spectral
from common import machine, workspace
from spectral.pg.conn import connect

CONFIG = """default_environment = "local"

[environments.local]
provider = "local"
posture = "pro"
schemas = ["core"]
load_bearing_tables = ["core.items"]
"""
FLOORS = ("restore", "snapshot_scan", "verify_scan", "teardown")


def _env() -> dict[str, str]:
    """The spectral this script imported, byte-compiled (as bench/fixed_costs.py)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(spectral.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env


def _spectral(here: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(Path(sys.executable).parent / "spectral"), *args]
    done = subprocess.run(argv, cwd=here, env=_env(), capture_output=True, text=True,
                          timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"spectral {' '.join(args)}: exit {done.returncode}: {done.stderr}")
    return done


def _prepare(here: Path) -> None:
    (here / "spectral.toml").write_text(CONFIG)
    _spectral(here, "local", "up")
    dsn = json.loads(_spectral(here, "local", "status", "--json").stdout)["dsn"]
    with connect(dsn) as conn:
        conn.execute("create schema core")
        conn.execute("create table core.items (id int primary key, note text, "
                     "updated_at timestamptz not null default now())")
        conn.execute("insert into core.items (id, note) select g, 'item ' || g "
                     "from generate_series(1, 100) g")
        conn.commit()
    _spectral(here, "dr", "backup")


def one_drill(here: Path) -> dict[str, float]:
    start = time.perf_counter()
    done = _spectral(here, "dr", "drill", "functional", "--json")
    wall = time.perf_counter() - start
    timings: dict[str, float] = json.loads(done.stdout)["timings"]
    floors = sum(timings.get(k, 0.0) for k in FLOORS)
    return {"wall": wall, **timings, "overhead": wall - floors,
            "overhead_without_integrity": wall - floors - timings.get("integrity", 0.0)}


def measure(n: int) -> dict[str, object]:
    out: dict[str, object] = {"machine": machine(), "rounds": n, "loadavg": os.getloadavg()}
    with workspace() as root:
        _prepare(root)
        try:
            one_drill(root)                            # warm: page cache, byte code
            drills = [one_drill(root) for _ in range(n)]
        finally:
            _spectral(root, "local", "down")
    out["drills"] = drills
    out["median"] = {k: round(statistics.median(d.get(k, 0.0) for d in drills), 3)
                     for k in drills[0]}
    out["loadavg_after"] = os.getloadavg()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, help="write the run as JSON here too")
    args = ap.parse_args()
    run = measure(args.rounds)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(run, indent=2) + "\n")
    print(f"{run['machine']}; {run['rounds']} drills, medians; load average before "
          f"{run['loadavg']}, after {run['loadavg_after']} (other work on the machine)")
    median = run["median"]
    assert isinstance(median, dict)
    for key, value in median.items():
        print(f"  {key:<28} {value:7.3f} s")


if __name__ == "__main__":
    main()
