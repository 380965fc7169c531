"""Shared set-up for the benchmarks: a reference cluster seeded at a given scale, reachable over
TCP with a password (some baselines cannot use a Unix socket), and a physical copy of it."""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.osuser import give_to_server, make_owned_dir, server_identity
from spectral.refdb.author import author
from spectral.refdb.migrate import migrate
from spectral.refdb.seed import seed
from spectral.runner import run


def machine() -> str:
    return (f"{platform.node()} {platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB")


def command() -> str:
    """This run's command line, as it can be typed again."""
    path = os.environ.get("PYTHONPATH")
    return (f"PYTHONPATH={path} " if path else "") + " ".join([sys.executable, *sys.argv])


def rough(seconds: float) -> str:
    """A duration to plan by."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


@contextmanager
def workspace() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="spectral-bench-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def new_cluster(bins: PgBinaries, root: Path, name: str, password: str) -> Cluster:
    d = make_owned_dir(root / name, 0o755)
    pw = d / "pw"
    pw.write_text(password)
    c = Cluster(bins, d / "data", socket_dir_for(d / "run"), free_port(), d / "pg.log")
    c.initdb(pwfile=pw, conf={"wal_level": "replica", "max_wal_size": "4GB",
                              "shared_buffers": "256MB"})
    return c


def seeded_cluster(bins: PgBinaries, root: Path, scale: int) -> tuple[Cluster, str]:
    password = secrets.token_hex(12)
    c = new_cluster(bins, root, "source", password)
    c.start()
    with c.connect() as conn:
        migrate(conn)
    seed(c.conninfo(), scale)
    with c.connect() as conn:
        author(conn)
        conn.execute("vacuum analyze")
    return c, password


def physical_copy(bins: PgBinaries, src: Cluster, root: Path) -> Cluster:
    d = make_owned_dir(root / "copy", 0o755)
    data = make_owned_dir(d / "data", 0o700)
    run([bins.path("pg_basebackup"), "-D", str(data), "-X", "fetch", "-c", "fast",
         "-d", src.conninfo()], timeout=3600, run_as=server_identity())
    give_to_server(data)
    copy = Cluster(bins, data, socket_dir_for(d / "run"), free_port(), d / "pg.log")
    copy.start()
    return copy


def tcp_url(c: Cluster, password: str) -> str:
    return f"postgresql://postgres:{password}@127.0.0.1:{c.port}/postgres"
