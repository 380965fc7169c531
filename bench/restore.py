#!/usr/bin/env python3
"""RTO of a restore of the ~1 GB reference database, in one run:

  1. spectral's restore (`LocalProvider.restore(--latest)`: re-verify the backup, copy it,
     replay the WAL since, promote) on the embedded PostgreSQL 18;
  2. the floor on the same backup: `cp -a` of the backup directory plus server start;
  3. on Debian's PostgreSQL 15 with the same (deterministic) data: spectral's restore again,
     and pgBackRest 2.45 (`pgbackrest restore` + start + promotion, `--process-max=2`,
     `--compress-type=none`), each from a full backup of its own cluster.

    .venv/bin/python bench/restore.py --scale 110
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from common import machine, workspace
from spectral.pg.binaries import PgBinaries, find_binaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.conn import connect
from spectral.pg.osuser import give_to_server, make_owned_dir, server_identity
from spectral.providers.local.environment import LocalEnvironment
from spectral.providers.local.provider import LocalProvider
from spectral.recovery_target import LatestTarget
from spectral.refdb.author import author
from spectral.refdb.migrate import migrate
from spectral.refdb.seed import seed
from spectral.runner import run
from spectral.waits import wait_until

PG15 = Path("/usr/lib/postgresql/15/bin")


def seeded_env(bins: PgBinaries, root: Path, name: str, scale: int) -> LocalProvider:
    local = LocalEnvironment(name, root / name, bins)
    cluster, _ = local.up()
    with cluster.connect() as conn:
        migrate(conn)
    seed(cluster.conninfo(), scale)
    with cluster.connect() as conn:
        author(conn)
        conn.execute("checkpoint")
    return LocalProvider(local)


def cold() -> None:
    """Every measurement starts with nothing of the backup in memory: after a disaster the
    backup is read from disk. (Measured warm, whichever copy runs second wins.)"""
    os.sync()
    with contextlib.suppress(OSError):
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def prepare(p: LocalProvider) -> None:
    p.backup()
    with connect(p.local.cluster().conninfo()) as conn:
        conn.execute("update worlds.returns set status = status where id % 100 = 0")


def spectral_rto(p: LocalProvider) -> dict:
    cold()
    started = time.monotonic()
    inst = p.restore(LatestTarget())
    seconds = time.monotonic() - started
    with connect(inst.dsn) as conn:
        rows = conn.execute("select count(*) from worlds.line_items").fetchone()[0]  # type: ignore[index]
    p.teardown(inst.id)
    return {"seconds": round(seconds, 2), "line_items": rows}


def floor_rto(p: LocalProvider, root: Path) -> dict:
    """cp -a of the newest backup's directory, then start it as a server."""
    backup = p.backups()[-1]
    src = p.repo.backup_dir(backup.id)
    dest = root / "floor"
    make_owned_dir(dest, 0o755)
    cold()
    started = time.monotonic()
    subprocess.run(["cp", "-a", str(src), str(dest / "data")], check=True)
    copied = time.monotonic() - started
    give_to_server(dest / "data")
    (dest / "data" / "spectral.conf").write_text("")   # no archiving into the source's repo
    c = Cluster(p.bins, dest / "data", socket_dir_for(dest / "run"), free_port(),
                dest / "pg.log")
    c.start(timeout=3600)
    seconds = time.monotonic() - started
    c.stop()
    shutil.rmtree(dest, ignore_errors=True)
    return {"seconds": round(seconds, 2), "cp_a_seconds": round(copied, 2)}


def pgbackrest_rto(bins: PgBinaries, root: Path, scale: int) -> dict:
    """A PostgreSQL 15 cluster archiving with pgBackRest; full backup; timed restore."""
    ident = server_identity()
    home = make_owned_dir(root / "pgbr", 0o755)
    repo = make_owned_dir(home / "repo", 0o750)
    for d in ("log", "lock", "spool"):
        make_owned_dir(home / d, 0o750)
    c = Cluster(bins, home / "data", socket_dir_for(home / "run"), free_port(), home / "pg.log")
    conf = home / "pgbackrest.conf"
    conf.write_text(f"""[global]
repo1-path={repo}
log-path={home / 'log'}
lock-path={home / 'lock'}
spool-path={home / 'spool'}
log-level-console=warn
log-level-file=off
compress-type=none
process-max=2
start-fast=y

[bench]
pg1-path={home / 'data'}
pg1-port={c.port}
pg1-socket-path={c.socket_dir}
pg1-user=postgres
""")
    give_to_server(conf)
    pgbr = ["pgbackrest", f"--config={conf}", "--stanza=bench"]
    c.initdb(conf={"wal_level": "replica", "archive_mode": "on", "max_wal_size": "4GB",
                   "archive_command": " ".join(pgbr) + " archive-push %p"})
    c.start()
    with c.connect() as conn:
        migrate(conn)
    seed(c.conninfo(), scale)
    with c.connect() as conn:
        author(conn)
    try:
        run([*pgbr, "stanza-create"], timeout=600, run_as=ident)
    except Exception as exc:
        print(getattr(exc, "stderr", exc))
        raise
    run([*pgbr, "--type=full", "backup"], timeout=7200, run_as=ident)
    with c.connect() as conn:
        conn.execute("update worlds.returns set status = status where id % 100 = 0")
        conn.execute("select pg_switch_wal()")
    time.sleep(2)
    target = home / "restored"
    make_owned_dir(target, 0o700)
    cold()
    started = time.monotonic()
    run([*pgbr, f"--pg1-path={target}", "restore"], timeout=7200, run_as=ident)
    (target / "spectral.conf").write_text("")
    give_to_server(target)
    r = Cluster(bins, target, socket_dir_for(home / "rrun"), free_port(), home / "r.log")
    r.start(timeout=3600)
    wait_until(lambda: _promoted(r), timeout=3600, interval=0.1, what="promotion")
    seconds = time.monotonic() - started
    with r.connect() as conn:
        rows = conn.execute("select count(*) from worlds.line_items").fetchone()[0]  # type: ignore[index]
    r.stop()
    c.stop()
    return {"seconds": round(seconds, 2), "line_items": rows}


def _promoted(c: Cluster) -> bool:
    with c.connect() as conn:
        return not conn.execute("select pg_is_in_recovery()").fetchone()[0]  # type: ignore[index]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=110)
    ap.add_argument("--skip-pg15", action="store_true")
    args = ap.parse_args()
    out: dict = {"machine": machine(), "scale": args.scale}
    bins = find_binaries(None)
    with workspace() as root:
        p = seeded_env(bins, root, "pg18", args.scale)
        try:
            prepare(p)
            rounds = [(floor_rto(p, root), spectral_rto(p)) for _ in range(2)]
            floor = min(r[0]["seconds"] for r in rounds)
            ours = min(r[1]["seconds"] for r in rounds)
            out["pg18"] = {"postgres": bins.version, "rounds": rounds,
                           "best_spectral_s": ours, "best_floor_s": floor,
                           "ratio_vs_floor": round(ours / floor, 2)}
        finally:
            p.local.down()
            shutil.rmtree(root / "pg18", ignore_errors=True)
        if not args.skip_pg15 and PG15.exists() and shutil.which("pgbackrest"):
            b15 = find_binaries(PG15)
            p15 = seeded_env(b15, root, "pg15", args.scale)
            try:
                prepare(p15)
                floor = floor_rto(p15, root)
                ours = spectral_rto(p15)
            finally:
                p15.local.down()
                shutil.rmtree(root / "pg15", ignore_errors=True)
            theirs = pgbackrest_rto(b15, root, args.scale)
            version = subprocess.run(["pgbackrest", "version"], capture_output=True,
                                     text=True).stdout.strip()
            out["pg15"] = {"postgres": b15.version, "spectral_restore": ours,
                           "floor_cp_a_plus_start": floor, "pgbackrest": {**theirs,
                                                                          "version": version},
                           "ratio_vs_floor": round(ours["seconds"] / floor["seconds"], 2),
                           "ratio_pgbackrest_vs_spectral": round(theirs["seconds"]
                                                                 / ours["seconds"], 2)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
