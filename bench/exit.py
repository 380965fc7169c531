#!/usr/bin/env python3
"""The provider exit of the ~1 GB reference database against its floor, in one run:

  1. the floor: `pg_dump -Fd -j 2` of the protected schemas and `pg_restore -j 2` into an empty
     database of a PostgreSQL 18 target, as its superuser (what is needed outside the schemas,
     the auth.users ids, auth.uid() and btree_gist, made beforehand and not timed);
  2. `spectral dr exit --jobs 2` into another empty database of the same server, as a role that
     is not a superuser: report, shims, the same dump and restore, proof;
  3. the same exit into Debian's PostgreSQL 15 (stock pg_restore cannot go there: see
     docs/provider-exit.md), for its time only.

    .venv/bin/python bench/exit.py --scale 110
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from common import machine, new_cluster, seeded_cluster, workspace
from spectral.pg.binaries import find_binaries
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect, with_dbname
from spectral.runner import run

PG15 = Path("/usr/lib/postgresql/15/bin")
SCHEMAS = ("core", "worlds", "platform")
SPECTRAL = str(Path(sys.executable).parent / "spectral")


def prepare_target(c: Cluster, db: str) -> str:
    with c.connect() as conn:
        if conn.execute("select 1 from pg_roles where rolname = 'app'").fetchone() is None:
            conn.execute("create role app login createrole")
        conn.execute(f"create database {db} owner app")
    return with_dbname(c.conninfo(), db).replace("user=postgres", "user=app")


def floor(bins_dir: Path, source: str, target_su: str, root: Path) -> dict[str, float]:
    dump = root / "floor-dump"
    started = time.monotonic()
    run([str(bins_dir / "pg_dump"), "-Fd", "-j", "2", "-f", str(dump),
         *[f"--schema={s}" for s in SCHEMAS], "-d", source], timeout=7200)
    dumped = time.monotonic()
    run([str(bins_dir / "pg_restore"), "-j", "2", "--exit-on-error", "-d", target_su,
         str(dump)], timeout=7200)
    return {"dump": dumped - started, "restore": time.monotonic() - dumped,
            "total": time.monotonic() - started}


def shims_for_floor(source: str, target_su: str) -> None:
    """What the floor's pg_restore needs outside the schemas (made by spectral's exit itself)."""
    with connect(source) as src:
        ids = [r[0] for r in src.execute("select id from auth.users")]
    with connect(target_su) as tgt:
        tgt.execute("create schema auth; create table auth.users (id uuid primary key)")
        tgt.execute("create function auth.uid() returns uuid language sql stable as "
                    "$$ select nullif(current_setting('request.jwt.claim.sub', true), '')::uuid $$")
        tgt.execute("create schema extensions; create extension btree_gist schema extensions")
        with tgt.cursor() as cur:
            cur.executemany("insert into auth.users values (%s)", [(i,) for i in ids])


def spectral_exit(work: Path, source: str, target: str) -> tuple[float, dict[str, float]]:
    (work / "spectral.toml").write_text(
        f'[environments.bench]\nprovider = "local"\ndsn = "env:SOURCE_DSN"\n'
        f'schemas = {json.dumps(list(SCHEMAS))}\n')
    env = {**os.environ, "SOURCE_DSN": source}
    started = time.monotonic()
    res = subprocess.run([SPECTRAL, "--env", "bench", "dr", "exit", "--to", target, "--jobs",
                          "2", "--yes", "--json"], cwd=work, env=env, capture_output=True,
                         text=True, timeout=7200)
    wall = time.monotonic() - started
    if res.returncode != 0:
        raise SystemExit(f"spectral dr exit failed ({res.returncode}): {res.stderr[-2000:]}")
    return wall, json.loads(res.stdout)["timings"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=110)
    args = ap.parse_args()
    bins = find_binaries(None)
    with workspace() as root:
        src, _password = seeded_cluster(bins, root, args.scale)
        t18 = new_cluster(bins, root, "t18", secrets.token_hex(8))
        t18.start()
        t15 = new_cluster(find_binaries(PG15), root, "t15", secrets.token_hex(8))
        t15.start()
        try:
            with src.connect() as conn:
                size = conn.execute("select sum(pg_total_relation_size(c.oid)) from pg_class c "
                                    "join pg_namespace n on n.oid = c.relnamespace where "
                                    "n.nspname = any(%s) and c.relkind in ('r', 'm')",
                                    (list(SCHEMAS),)).fetchone()
            work = root / "work"
            work.mkdir()
            exit18 = prepare_target(t18, "exit18")
            wall18, timings18 = spectral_exit(work, src.conninfo(), exit18)
            floor_db = with_dbname(t18.conninfo(), "floordb")
            with t18.connect() as conn:
                conn.execute("create database floordb")
            shims_for_floor(src.conninfo(), floor_db)
            base = floor(bins.bin_dir, src.conninfo(), floor_db, root)
            exit15 = prepare_target(t15, "exit15")
            wall15, timings15 = spectral_exit(work, src.conninfo(), exit15)
        finally:
            for c in (src, t18, t15):
                c.stop(timeout=60)
    moved = timings18.get("dump", 0) + timings18.get("restore", 0)
    print(json.dumps({
        "machine": machine(), "scale": args.scale,
        "protected_bytes": int(size[0]) if size and size[0] else None,
        "floor_pg_dump_pg_restore_s": round(base["total"], 2),
        "floor_split_s": {k: round(v, 2) for k, v in base.items()},
        "exit_into_18_wall_s": round(wall18, 2),
        "exit_into_18_timings_s": {k: round(v, 2) for k, v in timings18.items()},
        "exit_into_15_wall_s": round(wall15, 2),
        "exit_into_15_timings_s": {k: round(v, 2) for k, v in timings15.items()},
        "ratio_exit18_to_floor": round(wall18 / base["total"], 2),
        "ratio_dump_and_restore_to_floor": round(moved / base["total"], 2),
        "overhead_report_and_proof_s": round(wall18 - moved, 2),
    }, indent=1))


if __name__ == "__main__":
    main()
