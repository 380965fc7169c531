"""The main job on the embedded default (README's first command)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.table import Table

from spectral.cli.progress import seed_progress
from spectral.cli.state import AppState
from spectral.confirm import AssumeYes
from spectral.pg.conn import connect
from spectral.reseed import reseed
from spectral.target import Target, local_environment


def run_demo(st: AppState, scale: int) -> None:
    started = time.monotonic()
    local = local_environment(st.config, st.env)
    err = st.err
    if not st.json:
        err.print(f"[bold]{local.name}[/]: bringing up the embedded PostgreSQL "
                  f"({local.bins.version}) under {local.paths.state_dir}")
    name, env = st.config.environment(local.name)
    with local.session() as cluster:
        target = Target(name, env, cluster.conninfo(), cluster)
        # The demo owns the embedded environment: the re-seed is confirmed, but the refusals for
        # non-regenerable data (partner corpora, tier pro/pitr) still apply.
        with seed_progress(scale, enabled=not st.json and sys.stderr.isatty()) as progress:
            result = reseed(target, AssumeYes(), scale=scale, progress=progress)
        info = local.status()
        counts = {}
        with connect(target.conninfo) as conn:
            for table in env.load_bearing_tables:
                row = conn.execute(f"select count(*) from {table}").fetchone()
                counts[table] = int(row[0]) if row else 0
    data = {"environment": name, "server_version": info["server_version"], "dsn": info["dsn"],
            "size_bytes": info["size_bytes"], "scale": scale, "load_bearing_rows": counts,
            "seed_seconds": round(result.seed.seconds, 3),
            "seconds": round(time.monotonic() - started, 3),
            "cluster_left_running": local.cluster().is_running()}

    def human(c: Console) -> None:
        c.print(f"[bold]Spectral DR demo[/] - environment [bold]{name}[/], posture "
                f"{env.posture.value} (recovery is re-seed)")
        c.print(f"PostgreSQL {info['server_version']}, {info['size_bytes'] / 1e6:.1f} MB, "
                f"dsn {info['dsn']}")
        table = Table("load-bearing table", "rows")
        for t, n in counts.items():
            table.add_row(t, f"{n:,}")
        c.print(table)
        c.print(f"seed: {result.seed.bytes_sent / 1e6:.1f} MB in {result.seed.seconds:.2f} s; "
                f"{result.author.rules:,} rules authored; total {data['seconds']:.1f} s")
        c.print("cluster: " + ("left running (it was already up)"
                               if data["cluster_left_running"] else "stopped again"))

    st.emit(data, human)
