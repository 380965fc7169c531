#!/usr/bin/env python3
"""What a drill at an old point costs (issue 31, item 5: `dr drill functional --point random`),
against its floor measured in the same run, on the local provider (PostgreSQL 18, WAL archived
by basic_archive).

The chain: `pgbench -i` at the scale that makes about --gb gigabytes (schema public, every
table's content compared); `dr backup` (full: the oldest backup; `dr expire --keep 1` drops
pgbench -i's WAL before it); then three times an update of a contiguous tenth of
pgbench_accounts (WAL to replay) and `dr snapshot --content`, with `dr backup --incremental`
after the first. The snapshots are then older than the drill's --older-than, and the drill
restores the one its seed chooses, to its LSN, from the OLDEST backup (the full one), replaying
the WAL of every write before it.

Measured, alternating, --rounds times (best of each is the result):

- the drill: `spectral --json dr drill functional --point random --seed S --older-than Ns
  --content --amcheck basic`, as a process (its wall time: process start, the choice, restore,
  verification, the physical checks, teardown, the ledger entry);
- its floor, the same work with PostgreSQL's own tools and nothing of spectral's:
  restore: `cp -a` of the backup the drill chose + recovery of the archived WAL
  (restore_command = cp) to the same LSN, exclusive, + promotion until it answers;
  scan: the content scan of that copy by the floor method (bench/verify.py, the same sessions
  and TID ranges as the drill's one scan of its copy; the snapshot's own scan was made by
  `dr snapshot`, before, and is in neither);
  physical checks: `pg_amcheck` basic on the copy, a fast stop, `pg_checksums --check`;
  teardown: `rm -rf` of the stopped copy.

Not in the floor (the drill's overhead): process start and imports, reading the ledger's
snapshots, the window and the backups to choose, checking the backup before restoring, the
catalog comparison and the RPO, mapping files to relations, the recovery log read back, the
ledger entry. Everything runs warm (the page cache holds the backup and the archive) unless
--cold, which drops the caches before each drill and each floor (as bench/curves.py).

    PYTHONPATH=src:bench .venv/bin/python bench/random_point.py --gb 1 [--rounds 2] [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

import spectral
from common import command, machine, rough, workspace
from restore import _promoted, cold
from spectral.config.load import load_config
from spectral.environment import open_environment
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.conn import connect
from spectral.pg.integrity import amcheck_argv, checksums_argv
from spectral.pg.osuser import give_to_server, make_owned_dir, server_identity
from spectral.runner import run
from spectral.verify import content
from spectral.waits import wait_until
from verify import scan_with

MB_PER_SCALE = 15.0          # pgbench -i: ~15 MB of tables and indexes per scale unit
SEED = 7
OLDER_THAN = 2.0             # seconds: every snapshot of the chain is older when the drill runs
WORKERS = len(os.sched_getaffinity(0))
CONFIG = """default_environment = "local"

[environments.local]
provider = "local"
posture = "pitr"
schemas = ["public"]
load_bearing_tables = ["public.pgbench_accounts"]
"""
DRILL = ("--json", "dr", "drill", "functional", "--point", "random", "--seed", str(SEED),
         "--older-than", f"{OLDER_THAN:g}s", "--content", "--amcheck", "basic")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _env() -> dict[str, str]:
    """The spectral this script imported (as bench/drill_overhead.py)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(spectral.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env


def argv_of(*args: str) -> list[str]:
    return [sys.executable, str(Path(sys.executable).parent / "spectral"), *args]


def cli(here: Path, *args: str, timeout: float = 7200) -> tuple[float, str]:
    """Run `spectral ARGS` in `here`: its wall time and stdout (a failure stops the run)."""
    started = time.monotonic()
    done = subprocess.run(argv_of(*args), cwd=here, env=_env(), capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"spectral {' '.join(args)}: exit {done.returncode}: "
                         f"{done.stderr.strip()[-2000:]}\n{done.stdout[-2000:]}")
    return seconds, done.stdout


def _write_a_tenth(dsn: str, part: int, scale: int) -> None:
    """An update of the accounts' `part`-th tenth (contiguous: the WAL of a tenth of the table's
    pages, full-page images included, as a day of writes to some of the data)."""
    tenth = scale * 100_000 // 10
    with connect(dsn) as conn:
        conn.execute("update pgbench_accounts set abalance = abalance + 1 "
                     "where aid > %s and aid <= %s", (part * tenth, (part + 1) * tenth))


def prepare(here: Path, gb: float) -> dict[str, Any]:
    """The environment, its data and the chain of backups and snapshots (module docstring)."""
    (here / "spectral.toml").write_text(CONFIG)
    cli(here, "local", "up")
    dsn = json.loads(cli(here, "--json", "local", "status")[1])["dsn"]
    p = open_environment(load_config(here / "spectral.toml"), "local").provider
    scale = max(1, round(gb * 1000 / MB_PER_SCALE))
    log(f"pgbench -i -s {scale}")
    run([str(p.bins.path("pgbench")), "-i", "-q", "-s", str(scale), "-d", dsn], timeout=7200)
    with connect(dsn) as conn:
        conn.execute("vacuum analyze")
        mb = round(int(conn.execute("select pg_database_size(current_database())")
                       .fetchone()[0]) / 1e6)  # type: ignore[index]
    log("dr backup (full): the oldest backup, the one the drill restores")
    cli(here, "dr", "backup")
    cli(here, "dr", "expire", "--keep", "1", "--yes")   # pgbench -i's WAL: room at 10 GB
    for part in range(3):
        _write_a_tenth(dsn, part, scale)
        cli(here, "dr", "snapshot", "--content")
        if part == 0:
            log("dr backup --incremental")
            cli(here, "dr", "backup", "--incremental")
    time.sleep(OLDER_THAN + 0.5)
    return {"pgbench_scale": scale, "database_mb": mb, "backups": "full, incremental",
            "snapshots": 3, "repository_mb": _mb(p.repo.root)}


def _mb(path: Path) -> int:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6)


def floor(here: Path, point: dict[str, Any], dest: Path, use_cold: bool) -> dict[str, float]:
    """The drill's work done with PostgreSQL's tools alone (module docstring), step by step."""
    p = open_environment(load_config(here / "spectral.toml"), "local").provider
    out: dict[str, float] = {}
    folder = make_owned_dir(dest, 0o755)
    data = folder / "data"
    if use_cold:
        cold()
    started = time.monotonic()
    subprocess.run(["cp", "-a", str(p.repo.backup_dir(point["backup_id"])), str(data)],
                   check=True)
    # spectral.conf (included by postgresql.conf) replaces the source's: no archiving into the
    # source's archive, recovery from it to the snapshot's LSN instead
    (data / "spectral.conf").write_text(
        f"restore_command = 'cp \"{p.repo.archive}/%f\" \"%p\"'\n"
        f"recovery_target_lsn = '{point['snapshot_lsn']}'\n"
        "recovery_target_inclusive = off\nrecovery_target_action = 'promote'\n")
    (data / "recovery.signal").touch()
    give_to_server(data)
    c = Cluster(p.bins, data, socket_dir_for(folder / "run"), free_port(), folder / "pg.log")
    c.start(timeout=7200)
    wait_until(lambda: _promoted(c), timeout=7200, interval=0.02, what="promotion")
    out["restore_s"] = time.monotonic() - started
    out["scan_s"] = scan_with(c.conninfo(), content.Method.FLOOR, WORKERS, ("public",))
    mark = time.monotonic()
    res = run(amcheck_argv(p.bins, conninfo_to_dict(c.conninfo()), thorough=False),
              timeout=7200, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    c.stop(timeout=600)
    run(checksums_argv(p.bins, data), timeout=7200, run_as=server_identity())
    out["physical_checks_s"] = time.monotonic() - mark
    mark = time.monotonic()
    shutil.rmtree(folder)
    out["teardown_s"] = time.monotonic() - mark
    out["total_s"] = sum(out.values())
    return {k: round(v, 3) for k, v in out.items()}


def drill(here: Path, use_cold: bool) -> dict[str, Any]:
    if use_cold:
        cold()
    seconds, stdout = cli(here, *DRILL)
    result = json.loads(stdout)
    assert result["outcome"] == "pass", result
    return {"wall_s": round(seconds, 3), "timings": result["timings"],
            "point": result["point"], "backup_id": result["backup_id"]}


def measure(gb: float, rounds: int, use_cold: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"machine": machine(), "command": command(), "gb": gb,
                           "drill_command": "spectral " + " ".join(DRILL),
                           "warm": not use_cold, "loadavg": os.getloadavg()}
    with workspace() as root:
        here = make_owned_dir(root / "env", 0o755)
        try:
            out.update(prepare(here, gb))
            drills, floors = [], []
            for n in range(rounds):
                log(f"round {n + 1}: the drill")
                drills.append(drill(here, use_cold))
                log(f"round {n + 1}: its floor")
                floors.append(floor(here, drills[-1]["point"], root / f"floor{n}", use_cold))
        finally:
            subprocess.run(argv_of("dr", "teardown", "--all"), cwd=here, env=_env(),
                           capture_output=True, check=False, timeout=600)
            subprocess.run(argv_of("local", "down"), cwd=here, env=_env(),
                           capture_output=True, check=False, timeout=600)
    out.update(summary(drills, floors))
    out["loadavg_after"] = os.getloadavg()
    return out


def summary(drills: list[dict[str, Any]], floors: list[dict[str, float]]) -> dict[str, Any]:
    """The best round of each, the ratio and what the drill spent outside its floor."""
    best = min(drills, key=lambda d: d["wall_s"])
    low = min(floors, key=lambda f: f["total_s"])
    t = best["timings"]
    return {"point": best["point"], "drills": drills, "floors": floors,
            "drill_s": best["wall_s"], "floor": low,
            "ratio": round(best["wall_s"] / low["total_s"], 2),
            "drill_steps_s": {"restore": t.get("restore"), "verify": t.get("verify"),
                              "verify_scan": t.get("verify_scan"),
                              "integrity": t.get("integrity"), "teardown": t.get("teardown")},
            "overhead_s": round(best["wall_s"] - low["total_s"], 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, required=True, help="about how big the database is")
    ap.add_argument("--rounds", type=int, default=2, help="drills and floors, alternating")
    ap.add_argument("--cold", action="store_true", help="drop the page cache before each")
    ap.add_argument("--out", type=Path, help="write the run as JSON here too")
    ap.add_argument("--plan", action="store_true", help="say the scale, the room and the time "
                                                        "it needs, and stop")
    args = ap.parse_args()
    preflight(args.gb)
    if args.plan:
        return
    result = measure(args.gb, args.rounds, args.cold)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    f = result["floor"]
    print(f"\n{result['command']}\n{result['drill_command']}\n"
          f"drill {result['drill_s']:.2f} s against its floor {f['total_s']:.2f} s (restore "
          f"{f['restore_s']:.2f} + scan {f['scan_s']:.2f} + pg_amcheck/pg_checksums "
          f"{f['physical_checks_s']:.2f} + rm {f['teardown_s']:.2f}): {result['ratio']}x, "
          f"{result['overhead_s']:.2f} s outside the floor")


def preflight(gb: float) -> None:
    """Room in /tmp (the source with three tenths of its accounts rewritten and its pg_wal,
    a full backup and an incremental one, the archive of the three writes, the drill's copy or
    the floor's: about 4.5x the data) and a rough time, said before anything starts."""
    if not 0 < gb <= 100:
        raise SystemExit(f"--gb {gb:g}: expected more than 0 and at most 100")
    need = 4.5 * gb * 1e9 + 2e9
    free = shutil.disk_usage("/tmp").free
    scale = max(1, round(gb * 1000 / MB_PER_SCALE))
    log(f"--gb {gb:g}: pgbench scale {scale}; about {need / 1e9:.0f} GB of /tmp "
        f"({free / 1e9:.0f} GB free); rough time: a set-up of ~{rough(20 + 150 * gb)}, "
        f"then ~{rough(25 + 120 * gb)} per round (2 cores, warm; cold reads add the disk's time)")
    if free < need:
        raise SystemExit(f"--gb {gb:g} needs about {need / 1e9:.0f} GB free in /tmp, "
                         f"{free / 1e9:.0f} GB are")


if __name__ == "__main__":
    main()
