#!/usr/bin/env python3
"""The pgBackRest provider on the ~1 GB reference database (Debian's PostgreSQL 15 and
pgBackRest 2.45), in one run, with a POSIX repository (repo1) and an S3 repository (repo2,
moto over TLS on 127.0.0.1):

  - backups: `spectral dr backup --repo N --process-max P` (pgbackrest backup and info), with
    the pgbackrest backup part on its own, P = 1 and 2;
  - restores of the latest point, cold cache, P = 1 and 2: the floor is `pgbackrest restore`
    + server start + promotion on its own; spectral is `spectral dr restore --latest` (a fresh
    process: flush, window, plan, pgbackrest restore, recovery, the check where it stopped);
  - `spectral dr drill functional` on repo1: its restore part against the same floor.

    .venv/bin/python bench/pgbackrest.py --scale 110
    .venv/bin/python bench/pgbackrest.py --scale 5 --rounds 3 --only posix   # fixed costs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from common import machine, workspace
from restore import cold
from s3_server import s3_server
from spectral.pg.binaries import find_binaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.osuser import give_to_server, make_owned_dir, server_identity
from spectral.runner import run
from spectral.waits import wait_until

PG15 = Path("/usr/lib/postgresql/15/bin")
SPECTRAL = str(Path(sys.executable).parent / "spectral")


def tool_env(env: dict[str, str]) -> dict[str, str]:
    """The environment spectral runs in: byte-compiled as an installed tool is (this
    project's shells set PYTHONDONTWRITEBYTECODE, which made every process of a fresh worktree
    compile its imports again, a cost no installed spectral pays: bench/fixed_costs.py)."""
    out = {**os.environ, **env}
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    return out


def spectral(root: Path, env: dict[str, str], *args: str) -> Any:
    res = subprocess.run([SPECTRAL, *args], cwd=root, env=tool_env(env),
                         capture_output=True, text=True, timeout=7200, check=False)
    if res.returncode != 0:
        raise SystemExit(f"spectral {' '.join(args)}: {res.stderr.strip()}")
    return json.loads(res.stdout) if "--json" in args else res.stdout


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    started = time.monotonic()
    out = fn(*args)
    return round(time.monotonic() - started, 2), out


def floor_restore(root: Path, env: dict[str, str], label: str, repo: int, pm: int) -> float:
    """pgbackrest restore of the backup + start + promotion at the end of the archive."""
    home = make_owned_dir(root / "floor", 0o755)
    conf = root / ".spectral" / "pgb" / "pgbackrest" / "pgbackrest.conf"
    bins = find_binaries(PG15)
    cold()
    started = time.monotonic()
    run(["pgbackrest", f"--config={conf}", "--stanza=bench", "restore", f"--set={label}",
         f"--repo={repo}", f"--process-max={pm}", "--type=default",
         f"--pg1-path={home / 'data'}"], timeout=7200, env=env, run_as=server_identity())
    (home / "data" / "spectral.conf").write_text("")     # no archiving into the repository
    give_to_server(home / "data")
    c = Cluster(bins, home / "data", socket_dir_for(home / "run"), free_port(), home / "pg.log",
                env=env)
    c.start(timeout=3600)

    def promoted() -> bool:
        with c.connect() as conn:
            return not conn.execute("select pg_is_in_recovery()").fetchone()[0]  # type: ignore[index]

    wait_until(promoted, timeout=3600, interval=0.05, what="promotion")
    seconds = time.monotonic() - started
    c.stop()
    shutil.rmtree(home, ignore_errors=True)
    return round(seconds, 2)


def spectral_restore(root: Path, env: dict[str, str], pm: int) -> tuple[float, str]:
    cold()
    seconds, inst = timed(spectral, root, env, "dr", "restore", "--latest", "--process-max",
                          str(pm), "--json")
    spectral(root, env, "dr", "teardown", inst["id"])
    return seconds, inst["backup_id"]


@contextlib.contextmanager
def world(scale: int) -> Iterator[tuple[Path, dict[str, str], dict[str, str]]]:
    """A pgbackrest environment (repo1 POSIX, repo2 S3 on moto) seeded at `scale`: its folder,
    spectral's environment variables and pgBackRest's (the S3 secrets)."""
    with workspace() as root, s3_server(threaded=True) as s3:
        s3.client().create_bucket(Bucket="bench")
        env = {"BENCH_S3_KEY": s3.key_id, "BENCH_S3_SECRET": s3.secret}
        pgb_env = {"PGBACKREST_REPO2_S3_KEY": s3.key_id,
                   "PGBACKREST_REPO2_S3_KEY_SECRET": s3.secret}
        (root / "spectral.toml").write_text(
            f'[environments.pgb]\nprovider = "pgbackrest"\npg_bin_dir = "{PG15}"\n'
            f'[environments.pgb.pgbackrest]\nstanza = "bench"\n'
            f'[[environments.pgb.pgbackrest.repositories]]\ntype = "posix"\n'
            f'path = "{root / "repo"}"\n'
            f'[[environments.pgb.pgbackrest.repositories]]\ntype = "s3"\n'
            f's3_endpoint = "{s3.host_port}"\ns3_bucket = "bench"\ns3_uri_style = "path"\n'
            f's3_ca_file = "{s3.ca_file}"\ns3_key = "env:BENCH_S3_KEY"\n'
            f's3_key_secret = "env:BENCH_S3_SECRET"\n')
        try:
            spectral(root, env, "local", "up")
            spectral(root, env, "db", "migrate")
            spectral(root, env, "db", "seed", "--scale", str(scale))
            yield root, env, pgb_env
        finally:
            subprocess.run([SPECTRAL, "dr", "teardown", "--all"], cwd=root,
                           env=tool_env(env), capture_output=True, check=False)
            subprocess.run([SPECTRAL, "local", "down"], cwd=root, env=tool_env(env),
                           capture_output=True, check=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=110)
    ap.add_argument("--rounds", type=int, default=None,
                    help="restore rounds per repository and process-max (default: 2 POSIX, 1 S3)")
    ap.add_argument("--only", choices=["posix", "s3"], default=None,
                    help="one repository only (the drill runs on repo1 either way)")
    args = ap.parse_args()
    out: dict[str, Any] = {"machine": machine(), "scale": args.scale,
                           "pgbackrest": run(["pgbackrest", "version"], timeout=30).stdout.strip(),
                           "postgres": find_binaries(PG15).version}
    started = time.monotonic()
    with world(args.scale) as (root, env, pgb_env):
        out["seed_s"] = round(time.monotonic() - started, 2)
        out["database_bytes"] = spectral(root, env, "local", "status", "--json")["size_bytes"]
        out["results"] = restores(root, env, pgb_env, args)
        # the drill on the newest backup (repo2, P = 2 is the newest: back up to repo1 again)
        spectral(root, env, "dr", "backup", "--repo", "1", "--json")
        newest = spectral(root, env, "dr", "backups", "--json")["backups"][-1]["id"]
        floor = floor_restore(root, pgb_env, newest, 1, 1)
        cold()
        wall, drill = timed(spectral, root, env, "dr", "drill", "functional", "--json")
        out["drill"] = {"outcome": drill["outcome"], "wall_s": wall,
                        "timings": drill["timings"], "floor_restore_s": floor,
                        "restore_ratio": round(drill["timings"]["restore"] / floor, 3)}
    print(json.dumps(out, indent=2))


def restores(root: Path, env: dict[str, str], pgb_env: dict[str, str],
             args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for repo, name in ((1, "posix"), (2, "s3")):
        if args.only not in (None, name):
            continue
        for pm in (1, 2):
            wall, b = timed(spectral, root, env, "dr", "backup", "--repo", str(repo),
                            "--process-max", str(pm), "--json")
            rounds = []
            for _ in range(args.rounds or (2 if name == "posix" else 1)):
                floor = floor_restore(root, pgb_env, b["id"], repo, pm)
                ours, used = spectral_restore(root, env, pm)
                assert used == b["id"], (used, b["id"])
                rounds.append({"floor_s": floor, "spectral_s": ours})
            best_floor = min(r["floor_s"] for r in rounds)
            best_ours = min(r["spectral_s"] for r in rounds)
            results[f"{name}_pm{pm}"] = {
                "backup_id": b["id"], "backup_repo_bytes": b["size_bytes"],
                "pgbackrest_backup_s": b["duration_s"],
                "spectral_backup_s": wall, "restore_rounds": rounds,
                "restore_ratio": round(best_ours / best_floor, 3),
                "median_overhead_s": round(
                    statistics.median(r["spectral_s"] for r in rounds)
                    - statistics.median(r["floor_s"] for r in rounds), 2),
                "median_ratio": round(
                    statistics.median(r["spectral_s"] for r in rounds)
                    / statistics.median(r["floor_s"] for r in rounds), 3),
                "load": os.getloadavg()}
            print(json.dumps({f"{name}_pm{pm}": results[f"{name}_pm{pm}"]}), flush=True)
    return results


if __name__ == "__main__":
    main()
