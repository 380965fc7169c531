#!/usr/bin/env python3
"""Export speed of a 100,000-rule partner corpus (target: under 10 s), plus an unchanged
re-export and the import of the same files into a fresh reference database.

    .venv/bin/python bench/rules.py --rules 100000
"""

from __future__ import annotations

import argparse
import json
import os
import time

from common import machine, workspace
from spectral.pg.binaries import find_binaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.conn import connect, with_dbname
from spectral.pg.osuser import make_owned_dir
from spectral.refdb.author import author, partner_corpus
from spectral.refdb.migrate import migrate
from spectral.refdb.seed import seed
from spectral.rules.export import export
from spectral.rules.importer import load, read_folder


def reference(c: Cluster, name: str) -> str:
    with c.connect() as conn:
        conn.execute(f"create database {name}")
    dsn = with_dbname(c.conninfo(), name)
    with connect(dsn) as conn:
        migrate(conn)
    seed(dsn, 1)
    with connect(dsn) as conn:
        author(conn)
    return dsn


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=100_000)
    args = ap.parse_args()
    bins = find_binaries(None)
    out: dict = {"machine": machine(), "postgres": bins.version, "rules": args.rules}
    with workspace() as root:
        d = make_owned_dir(root / "c", 0o755)
        c = Cluster(bins, d / "data", socket_dir_for(d / "run"), free_port(), d / "pg.log")
        c.initdb()
        c.start()
        try:
            src = reference(c, "src")
            with connect(src) as conn:
                partner_corpus(conn, "acme-tax", rules=args.rules)
            folder = root / "rules"
            for label in ("first_export_s", "unchanged_reexport_s"):
                started = time.monotonic()
                with connect(src) as conn:
                    result = export(conn, ["acme-tax"], folder)[0]
                out[label] = round(time.monotonic() - started, 2)
                out[label.replace("_s", "_files_written")] = len(result.written)
            out["files"] = sum(len(f) for _, _, f in os.walk(folder))
            dst = reference(c, "dst")
            started = time.monotonic()
            loaded = read_folder(folder, "acme-tax")
            with connect(dst) as conn:
                load(conn, loaded, replace=False)
            out["import_s"] = round(time.monotonic() - started, 2)
        finally:
            c.stop()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
