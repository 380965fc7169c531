"""A drill's own overhead (issue 32, item 3): the wall time of `spectral dr drill functional`
as a process, less what has a floor of its own: the restore (copy + PostgreSQL's replay and
start), the two content scans and deleting the copy. The physical checks of the copy
(pg_amcheck, pg_checksums: `integrity`) are shown on their own line: their floor is those
tools' time.

A small local environment: `spectral local up`, one table of 100 rows, one backup; then
--rounds drills, each one process.

    .venv/bin/python bench/drill_overhead.py --rounds 3 [--out bench/out/drill-overhead-N.json]
    git archive <before> src | tar -x -C /tmp/before      # then, before and after alternating:
    .venv/bin/python bench/drill_overhead.py --rounds 5 --against /tmp/before/src
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


def _env(src: Path | None = None) -> dict[str, str]:
    """The spectral this script imported (or the one in `src`), byte-compiled (as
    bench/fixed_costs.py)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(src or Path(spectral.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env


def _spectral(here: Path, *args: str, src: Path | None = None
              ) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(Path(sys.executable).parent / "spectral"), *args]
    done = subprocess.run(argv, cwd=here, env=_env(src), capture_output=True, text=True,
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


def one_drill(here: Path, src: Path | None = None) -> dict[str, float]:
    start = time.perf_counter()
    done = _spectral(here, "dr", "drill", "functional", "--json", src=src)
    wall = time.perf_counter() - start
    timings: dict[str, float] = json.loads(done.stdout)["timings"]
    floors = sum(timings.get(k, 0.0) for k in FLOORS)
    return {"wall": wall, **timings, "overhead": wall - floors,
            "overhead_without_integrity": wall - floors - timings.get("integrity", 0.0)}


def measure(n: int, against: Path | None = None) -> dict[str, object]:
    """`n` drills; with `against` (another tree's src/, e.g. a `git archive` of the commit
    before), each round runs one drill with it too, alternating, so both see the same load."""
    out: dict[str, object] = {"machine": machine(), "rounds": n, "loadavg": os.getloadavg()}
    trees: dict[str, Path | None] = {"drills": None}
    if against is not None:
        trees[f"drills with {against}"] = against
    with workspace() as root:
        _prepare(root)
        try:
            for src in trees.values():
                one_drill(root, src)                   # warm: page cache, byte code
            rounds = [{name: one_drill(root, src) for name, src in trees.items()}
                      for _ in range(n)]
        finally:
            _spectral(root, "local", "down")
    for name in trees:
        drills = [r[name] for r in rounds]
        out[name] = drills
        out["median" if name == "drills" else f"median with {against}"] = {
            k: round(statistics.median(d.get(k, 0.0) for d in drills), 3) for k in drills[0]}
    out["loadavg_after"] = os.getloadavg()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, help="write the run as JSON here too")
    ap.add_argument("--against", type=Path, help="another tree's src/ (before a change): "
                                                 "its drills alternate with this one's")
    args = ap.parse_args()
    run = measure(args.rounds, args.against)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(run, indent=2) + "\n")
    print(f"{run['machine']}; {run['rounds']} drills, medians; load average before "
          f"{run['loadavg']}, after {run['loadavg_after']} (other work on the machine)")
    for label in [k for k in run if str(k).startswith("median")]:
        median = run[label]
        assert isinstance(median, dict)
        print(label)
        for key, value in median.items():
            print(f"  {key:<28} {value:7.3f} s")


if __name__ == "__main__":
    main()
