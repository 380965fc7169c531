"""How often a snapshot is not "every commit before its LSN" (verify/pinning.py), measured
against an oracle that shares no code with it: a workload whose every transaction inserts one
row holding its own xid, so a snapshot's row count is how many of its commits it sees, and
pg_waldump of the primary's pg_wal says how many commit records lie before any LSN.

    PYTHONPATH=src:bench .venv/bin/python bench/pin_window.py --side replica --seconds 30
    PYTHONPATH=src:bench .venv/bin/python bench/pin_window.py --side primary --async-commit

Each sample is what the fingerprint does: on a replica, the replay LSN read in a transaction
of its own, then (after a LOCK, which takes no snapshot) the snapshot's statement reading the
replay LSN again, the receive LSN, pg_current_snapshot() and the count; on a primary the
statement reads the write position (pg_current_wal_lsn, what spectral read before), the
insert position and the rest. A sample is wrong at an LSN when its count differs from the
commits of the workload before it; pin() is then asked what it makes of the sample."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from psycopg.conninfo import make_conninfo

from common import machine, workspace
from spectral.pg.binaries import find_binaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.osuser import make_owned_dir, server_identity
from spectral.pg.waldump import CommitRecord, parse_commit_line, parse_lsn
from spectral.runner import run
from spectral.verify.pinning import PinFacts, SnapshotXids, Unpinned, pin

REPLICA_SQL = """select pg_last_wal_replay_lsn()::text, pg_current_snapshot()::text,
                        pg_last_wal_receive_lsn()::text, (select count(*) from t)"""
PRIMARY_SQL = """select pg_current_wal_lsn()::text, pg_current_wal_insert_lsn()::text,
                        pg_current_snapshot()::text, (select count(*) from t)"""


def start(bins: Any, root: Path) -> Cluster:
    d = make_owned_dir(root / "primary", 0o755)
    c = Cluster(bins, d / "data", socket_dir_for(d / "run"), free_port(), d / "pg.log",
                port_chosen=True)
    c.initdb(conf={"wal_level": "replica", "max_wal_size": "8GB", "min_wal_size": "8GB",
                   "checkpoint_timeout": "1h", "wal_keep_size": "8GB"})
    c.start()
    with c.connect(autocommit=True) as conn:
        conn.execute("create table t (x bigint)")
    return c


def replica_of(bins: Any, primary: Cluster, root: Path) -> Cluster:
    home = make_owned_dir(root / "replica", 0o755)
    run([bins.path("pg_basebackup"), "-D", str(home / "data"), "-R", "-X", "stream", "-c",
         "fast", "-h", str(primary.socket_dir), "-p", str(primary.port), "-U",
         primary.superuser], timeout=600, run_as=server_identity())
    r = Cluster(bins, home / "data", socket_dir_for(home / "run"), free_port(),
                home / "pg.log", superuser=primary.superuser, database=primary.database,
                port_chosen=True)
    r.start()
    return r


def sample_replica(dsn: str, until: float) -> list[dict[str, Any]]:
    import psycopg

    out = []
    with psycopg.connect(dsn) as conn:
        while time.monotonic() < until:
            row = conn.execute("select pg_last_wal_replay_lsn()::text").fetchone()
            conn.commit()
            conn.execute("set transaction isolation level repeatable read, read only")
            conn.execute("lock table t in access share mode")
            lsn, snap, received, count = conn.execute(REPLICA_SQL).fetchone()  # type: ignore[misc]
            conn.commit()
            out.append({"before": row[0] if row else None, "lsn": lsn, "snap": snap,
                        "received": received, "count": count})
    return out


def sample_primary(dsn: str, until: float) -> list[dict[str, Any]]:
    import psycopg

    out = []
    with psycopg.connect(dsn) as conn:
        while time.monotonic() < until:
            conn.execute("set transaction isolation level repeatable read, read only")
            conn.execute("lock table t in access share mode")
            write, insert, snap, count = conn.execute(PRIMARY_SQL).fetchone()  # type: ignore[misc]
            conn.commit()
            out.append({"write": write, "lsn": insert, "snap": snap, "count": count})
            time.sleep(0.001)
    return out


def hog(dsn: str, until: float) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < until:
            conn.execute("select sum(g) from generate_series(1, 3000000) g")


def commits(bins: Any, primary: Cluster, start_lsn: str) -> list[CommitRecord]:
    res = run([bins.path("pg_waldump"), "--rmgr=Transaction", "-p",
               str(primary.data_dir / "pg_wal"), "-s", start_lsn], timeout=600, check=False,
              run_as=server_identity())
    found = [c for ln in res.stdout.splitlines() if (c := parse_commit_line(ln))]
    return sorted(found, key=lambda c: c.lsn)


def judge(samples: list[dict[str, Any]], wal: list[CommitRecord], workload: set[int],
          side: str) -> dict[str, Any]:
    ours = sorted(c.lsn for c in wal if c.committed and c.xid in workload)

    def before(lsn: str) -> int:
        import bisect
        return bisect.bisect_left(ours, parse_lsn(lsn))

    tally = {"samples": len(samples), "replay_moved": 0, "wrong_at_read_lsn": 0,
             "wrong_at_write_lsn": 0, "pinned": 0, "moved_by_pin": 0, "unpinned": 0,
             "unpinned_but_right": 0, "pinned_wrong": 0, "received_eq_replayed": 0}
    for s in samples:
        if side == "replica" and s["before"] != s["lsn"]:
            tally["replay_moved"] += 1
            continue
        right = before(s["lsn"]) == s["count"]
        tally["wrong_at_read_lsn"] += not right
        if side == "primary":
            tally["wrong_at_write_lsn"] += before(s["write"]) != s["count"]
        tally["received_eq_replayed"] += s.get("received") == s["lsn"]
        facts = PinFacts(s["lsn"], SnapshotXids.parse(s["snap"], complete=side == "primary"),
                         side == "replica", s.get("received"))
        try:
            lsn = pin(facts, wal)
        except Unpinned:
            tally["unpinned"] += 1
            tally["unpinned_but_right"] += right
            continue
        tally["pinned"] += 1
        tally["moved_by_pin"] += lsn != s["lsn"]
        tally["pinned_wrong"] += before(lsn) != s["count"]
    return tally


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--side", choices=["replica", "primary"], default="replica")
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--rate", type=int, default=300, help="pgbench --rate (tps)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--async-commit", action="store_true", help="synchronous_commit=off")
    ap.add_argument("--hog", type=int, default=0,
                    help="sessions on the sampled server burning CPU meanwhile (a scan's)")
    args = ap.parse_args()
    bins = find_binaries(None)
    with workspace() as root:
        primary = start(bins, root)
        replica = replica_of(bins, primary, root) if args.side == "replica" else None
        try:
            with primary.connect() as conn:
                first = str(conn.execute("select pg_current_wal_insert_lsn()").fetchone()[0])  # type: ignore[index]
            script = root / "insert.sql"
            script.write_text("insert into t values (pg_current_xact_id()::text::bigint);\n")
            env = {**os.environ, "PGOPTIONS": "-c synchronous_commit=off"
                   if args.async_commit else ""}
            bench = subprocess.Popen(
                [bins.path("pgbench"), "-n", "-f", str(script), "-R", str(args.rate), "-c",
                 str(args.clients), "-T", str(args.seconds), "-d", primary.conninfo()],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            until = time.monotonic() + args.seconds
            dsn = primary.conninfo() if replica is None else make_conninfo(
                primary.conninfo(), host=str(replica.socket_dir), port=str(replica.port))
            hogs = [threading.Thread(target=hog, args=(dsn, until)) for _ in range(args.hog)]
            for h in hogs:
                h.start()
            samples = (sample_replica if replica else sample_primary)(dsn, until)
            for h in hogs:
                h.join()
            bench.wait(timeout=args.seconds + 60)
            with primary.connect() as conn:
                workload = {int(r[0]) & 0xFFFFFFFF for r in conn.execute("select x from t")}
                conn.execute("select pg_switch_wal()")
            wal = commits(bins, primary, first)
            tally = judge(samples, wal, workload, args.side)
            print(json.dumps({"machine": machine(), "side": args.side,
                              "async_commit": args.async_commit, "rate": args.rate,
                              "clients": args.clients, "seconds": args.seconds,
                              "workload_commits": len(workload), **tally}, indent=1))
        finally:
            if replica is not None:
                replica.stop(timeout=60, discard=True)
            primary.stop(timeout=60, discard=True)


if __name__ == "__main__":
    main()
