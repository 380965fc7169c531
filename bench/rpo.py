#!/usr/bin/env python3
"""RPO under a pgbench write load: kill -9 the source, remove its data directory, restore with
--latest, count the committed transactions that were lost. Three modes, one run each:

  - `sync`:    `spectral dr wal stream --synchronous` (target: 0 lost);
  - `async`:   `spectral dr wal stream` (target: under 1 second of commits lost);
  - `archive`: archiving only (archive_timeout = 60 s), for comparison.

Committed = the transactions pgbench logged as done (-l writes a line only after the commit
returned). Each transaction inserts one row, so lost = logged - rows in the restore.

    .venv/bin/python bench/rpo.py --seconds 6
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from common import machine, workspace
from spectral.pg.binaries import find_binaries
from spectral.pg.conn import connect
from spectral.pg.osuser import make_owned_dir, server_identity
from spectral.waits import wait_until

SCRIPT = "insert into rpo_probe (client) values (:client_id);\n"


def spectral(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).parent / "spectral")
    return subprocess.run([exe, *args], cwd=root, capture_output=True, text=True, check=False)


def one(mode: str, root: Path, seconds: float, clients: int) -> dict:
    work = root / mode
    work.mkdir()
    work.chmod(0o755)
    assert spectral(work, "local", "up").returncode == 0
    info = json.loads(spectral(work, "local", "status", "--json").stdout)
    with connect(info["dsn"]) as conn:
        conn.execute("create table rpo_probe (id bigserial primary key, client int, "
                     "at timestamptz default clock_timestamp())")
    assert spectral(work, "dr", "backup").returncode == 0
    stream = None
    exe = str(Path(sys.executable).parent / "spectral")
    if mode != "archive":
        stream = subprocess.Popen([exe, "dr", "wal", "stream", "--seconds", "600",
                                   *(["--synchronous"] if mode == "sync" else [])], cwd=work,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: _streaming(info["dsn"], mode), timeout=30, what="stream")
    logs = make_owned_dir(work / "pgbench", 0o777)
    script = work / "rpo.sql"
    script.write_text(SCRIPT)
    script.chmod(0o644)
    bins = find_binaries(None)
    ident = server_identity()
    bench = subprocess.Popen(
        [bins.path("pgbench"), "-n", "-c", str(clients), "-T", str(int(seconds * 3)), "-l",
         "-f", str(script), "-h", info["dsn"].split("host=")[1].split("&")[0], "-p",
         str(info["port"]), "-U", "postgres", "postgres"],
        cwd=logs, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        user=ident.uid if ident else None, group=ident.gid if ident else None)
    time.sleep(seconds)
    os.kill(info["pid"], signal.SIGKILL)                 # the disaster
    killed_at = time.time()
    bench.communicate(timeout=120)
    shutil.rmtree(info["data_dir"])                      # and its data directory with it
    if stream is not None:
        stream.send_signal(signal.SIGINT)
        stream.wait(timeout=60)
    committed = sum(len(p.read_text().splitlines()) for p in logs.glob("pgbench_log.*"))
    started = time.monotonic()
    res = spectral(work, "--json", "dr", "restore", "--latest")
    restore_s = time.monotonic() - started
    if res.returncode != 0:
        return {"mode": mode, "error": res.stderr.strip()}
    inst = json.loads(res.stdout)
    with connect(inst["dsn"]) as conn:
        restored, newest = conn.execute("select count(*), max(at) from rpo_probe").fetchone()  # type: ignore[misc]
    spectral(work, "dr", "teardown", "--all")
    rate = committed / seconds if seconds else 0
    lost = max(0, committed - restored)
    return {"mode": mode, "committed": committed, "restored": int(restored),
            "lost": lost, "lost_seconds_of_commits": round(lost / rate, 3) if rate else None,
            "commits_per_second": round(rate), "restore_seconds": round(restore_s, 2),
            "newest_restored_vs_kill_s": round(killed_at - newest.timestamp(), 3)
            if newest else None}


def _streaming(dsn: str, mode: str) -> bool:
    with connect(dsn) as conn:
        row = conn.execute("select sync_state from pg_stat_replication "
                           "where application_name = 'spectral_stream'").fetchone()
    return bool(row) and (mode != "sync" or row[0] == "sync")   # type: ignore[index]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    out: dict = {"machine": machine(), "seconds_of_load": args.seconds, "clients": args.clients,
                 "runs": []}
    with workspace() as root:
        for mode in ("sync", "async", "archive"):
            out["runs"].append(one(mode, root, args.seconds, args.clients))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
