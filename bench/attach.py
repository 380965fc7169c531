#!/usr/bin/env python3
"""Attached backends (issue 30) against the restore floor of the team's own tool, in one run:

  - a team's pgBackRest stanza (Debian's PostgreSQL 15, pgBackRest 2.45, its own
    configuration file): the floor is `pgbackrest restore` + start + promotion, as the team
    would run it; spectral is `spectral dr restore --latest` on the attached environment (a
    fresh process: the window from info and repo-ls, the plan, the same pgbackrest restore,
    recovery, the check of where it stopped);
  - a plain archive (the embedded PostgreSQL 18, pg_basebackup plain, archive_command cp): the
    floor is `cp -a` of the backup + recovery with `cp` as restore_command + start; spectral is
    `spectral dr restore --latest` (copy, pg_verifybackup, recovery);
  - `spectral dr drill functional` on each, its wall time.

Each restore is of the latest point with a cold cache, best of `--rounds`.

    .venv/bin/python bench/attach.py --mb 300
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

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from attach_world import STANZA, team_archive, team_stanza
from common import machine, workspace
from restore import cold
from spectral.pg.binaries import PgBinaries, find_binaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.osuser import give_to_server, make_owned_dir, server_identity
from spectral.runner import run
from spectral.waits import wait_until

PG15 = Path("/usr/lib/postgresql/15/bin")
SPECTRAL = str(Path(sys.executable).parent / "spectral")


def spectral(root: Path, *args: str) -> Any:
    res = subprocess.run([SPECTRAL, *args], cwd=root, env=dict(os.environ), capture_output=True,
                         text=True, timeout=7200, check=False)
    if res.returncode != 0:
        raise SystemExit(f"spectral {' '.join(args)}: {res.stderr.strip()}\n{res.stdout}")
    return json.loads(res.stdout) if "--json" in args else res.stdout


def fill(sql: Any, mb: int) -> None:
    rows = mb * 1024 * 1024 // 260
    sql("create table app.big (id bigint primary key, pad text)")
    sql(f"insert into app.big select g, repeat('x', 200) from generate_series(1, {rows}) g")
    sql("checkpoint")


def started_and_promoted(bins: PgBinaries, home: Path) -> None:
    give_to_server(home / "data")
    c = Cluster(bins, home / "data", socket_dir_for(home / "run"), free_port(), home / "pg.log")
    c.start(timeout=3600)

    def promoted() -> bool:
        with c.connect() as conn:
            return not conn.execute("select pg_is_in_recovery()").fetchone()[0]  # type: ignore[index]

    wait_until(promoted, timeout=3600, interval=0.05, what="promotion")
    c.stop()


def floor_pgbackrest(root: Path, conf: Path, bins: PgBinaries) -> float:
    home = make_owned_dir(root / "floor", 0o755)
    cold()
    started = time.monotonic()
    run(["pgbackrest", f"--config={conf}", f"--stanza={STANZA}", "restore", "--type=default",
         f"--pg1-path={home / 'data'}", "--archive-mode=off"], timeout=7200,
        run_as=server_identity())
    started_and_promoted(bins, home)
    seconds = time.monotonic() - started
    shutil.rmtree(home, ignore_errors=True)
    return round(seconds, 2)


def floor_archive(root: Path, backup: Path, wal: Path, bins: PgBinaries) -> float:
    home = make_owned_dir(root / "floor", 0o755)
    cold()
    started = time.monotonic()
    make_owned_dir(home / "data", 0o700)
    run(["cp", "-a", f"{backup}/.", str(home / "data")], timeout=7200)
    with open(home / "data" / "postgresql.auto.conf", "a") as f:
        f.write(f"\nrestore_command = 'cp {wal}/%f \"%p\"'\narchive_mode = off\n")
    (home / "data" / "recovery.signal").touch()
    started_and_promoted(bins, home)
    seconds = time.monotonic() - started
    shutil.rmtree(home, ignore_errors=True)
    return round(seconds, 2)


def ours(root: Path) -> float:
    cold()
    started = time.monotonic()
    inst = spectral(root, "dr", "restore", "--latest", "--json")
    seconds = time.monotonic() - started
    spectral(root, "dr", "teardown", inst["id"])
    return round(seconds, 2)


def measure(root: Path, floor: Any, rounds: int) -> dict[str, Any]:
    got = [{"floor_s": floor(), "spectral_s": ours(root)} for _ in range(rounds)]
    best_floor, best = min(r["floor_s"] for r in got), min(r["spectral_s"] for r in got)
    started = time.monotonic()
    drill = spectral(root, "dr", "drill", "functional", "--json")
    return {"rounds": got, "ratio": round(best / best_floor, 3),
            "drill_s": round(time.monotonic() - started, 2), "drill": drill["outcome"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    out: dict[str, Any] = {"machine": machine(), "mb": args.mb,
                           "pgbackrest": run(["pgbackrest", "version"], timeout=30).stdout.strip()}
    with workspace() as root:
        pg15 = find_binaries(PG15)
        with team_stanza(root, pg15) as team:
            fill(team.sql, args.mb)
            team.pgbackrest("backup", "--type=full", timeout=7200)
            team.sql("alter system set archive_timeout = '2s'")
            team.sql("select pg_reload_conf()")
            team.archived_now()
            (root / "spectral.toml").write_text(
                f'[environments.team]\nprovider = "pgbackrest"\ndsn = "{team.dsn}"\n'
                f'pg_bin_dir = "{PG15}"\nschemas = ["app"]\n'
                'load_bearing_tables = ["app.ledger"]\n[environments.team.pgbackrest]\n'
                f'attach = true\nstanza = "{STANZA}"\nconfig = "{team.conf}"\n')
            out["pgbackrest"] = measure(root, lambda: floor_pgbackrest(root, team.conf, pg15),
                                        args.rounds)
            print(json.dumps({"pgbackrest": out["pgbackrest"]}), flush=True)
        shutil.rmtree(root / "team", ignore_errors=True)
        shutil.rmtree(root / ".spectral", ignore_errors=True)
        bins = find_binaries(None)
        with team_archive(root, bins, None) as files:
            fill(files.sql, args.mb)
            backup = files.basebackup("plain")
            files.sql("alter system set archive_timeout = '2s'")
            files.sql("select pg_reload_conf()")
            files.archived_now()
            (root / "spectral.toml").write_text(
                f'[environments.files]\nprovider = "archive"\ndsn = "{files.dsn}"\n'
                f'pg_bin_dir = "{bins.bin_dir}"\nschemas = ["app"]\n'
                'load_bearing_tables = ["app.ledger"]\n'
                f'[environments.files.archive]\nbase_backups = "{files.base}"\n'
                f'wal = "{files.wal}"\n')
            out["archive"] = measure(root, lambda: floor_archive(root, backup, files.wal, bins),
                                     args.rounds)
            print(json.dumps({"archive": out["archive"]}), flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
