"""The fixed costs of the command line (issue 32, item 3): what every `spectral` process pays
before it does any work, against the floor of a Python process and of psql.

Measured, each as a process from fork to exit (median of --rounds):
- `python -c pass` with the same interpreter: the floor of any Python command line;
- `spectral --help`, `spectral --version`;
- `spectral dr status` on an empty configuration (the embedded default, nothing recorded yet);
- `psql -c 'select 1'`: the floor of a command line that talks to PostgreSQL.
And the first SQL after start: a tiny cluster logs every statement with a millisecond timestamp
(log_statement = all, log_line_prefix = '%m'); the time from fork to the first statement of
`spectral dr fingerprint` (a dsn environment, one table of ten rows; alone in its file, and
beside one environment of each other backend), and of psql's `select 1`.

Run (the machine's other load shows in every figure; say it beside them):
    .venv/bin/python bench/fixed_costs.py --rounds 5 [--out bench/out/fixed-N.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import spectral
from common import machine, new_cluster, workspace
from spectral.pg.binaries import find_binaries
from spectral.pg.cluster import Cluster


def spectral_argv() -> list[str]:
    """The installed entry point when there is one (what a person runs), else the same call."""
    script = Path(sys.executable).parent / "spectral"
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "from spectral.cli.main import main; main()"]


def _env() -> dict[str, str]:
    """The spectral this script imported (a worktree's src/ first, whatever the working
    directory), byte-compiled as an installed tool has it (this project's shells set
    PYTHONDONTWRITEBYTECODE, which makes every start compile the sources again)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(spectral.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env


CPU: list[float] = []    # user + system seconds of each process timed, in order


def timed(argv: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, float]:
    """(wall-clock epoch at fork, seconds from fork to exit); the process's CPU time goes to
    CPU (less disturbed than the wall clock by the other work on a busy machine)."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start_epoch, start = time.time(), time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=_env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, timeout=120, check=False)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU.append(after.ru_utime - used.ru_utime + after.ru_stime - used.ru_stime)
    if done.returncode not in ok:
        raise SystemExit(f"{argv}: exit {done.returncode}: {done.stderr.decode()[-2000:]}")
    return start_epoch, took


def first_statement(log: Path, offset: int, marker: str) -> float:
    """The epoch of the first logged statement after `offset` whose line holds `marker`."""
    with log.open("rb") as f:
        f.seek(offset)
        for raw in f.read().decode(errors="replace").splitlines():
            if "statement:" in raw and marker in raw:
                stamp = " ".join(raw.split()[:2])      # 2026-12-05 20:10:11.123 (UTC)
                return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").replace(
                    tzinfo=UTC).timestamp()
    raise SystemExit(f"no statement marked {marker!r} in {log} after byte {offset}")


def sql_start(argv: list[str], cwd: Path, log: Path, marker: str) -> tuple[float, float]:
    """(seconds from fork to the first statement at the server, seconds from fork to exit)."""
    offset = log.stat().st_size
    epoch, took = timed(argv, cwd)
    time.sleep(0.05)     # the server's log line reaches the file
    return first_statement(log, offset, marker) - epoch, took


def rounds(n: int, once: Callable[[], float]) -> dict[str, object]:
    once()                                          # warm: page cache, byte code
    del CPU[:]
    got = [once() for _ in range(n)]
    return {"median_s": round(statistics.median(got), 4), "rounds_s": [round(g, 4) for g in got],
            "cpu_median_s": round(statistics.median(CPU), 4) if CPU else None}


def _cluster(root: Path) -> Cluster:
    c = new_cluster(find_binaries(), root, "tiny", "unused")
    conf = c.data_dir / "postgresql.auto.conf"
    with conf.open("a") as f:
        f.write("log_statement = 'all'\nlog_line_prefix = '%m [%a] '\nlog_timezone = 'UTC'\n")
    c.start()
    with c.connect() as conn:
        conn.execute("create table public.tiny (id int primary key, note text)")
        conn.execute("insert into public.tiny select g, 'row ' || g from generate_series(1, 10) g")
    return c


# One environment of each other backend beside the one used: a command pays for the one it
# uses (each is validated when used), not for every provider's settings in the file.
OTHERS = """
[environments.local]
provider = "local"

[environments.sb]
provider = "supabase"
project_ref = "abc"
dsn = "env:D"
access_token = "env:T"

[environments.pgb]
provider = "pgbackrest"

[environments.team]
provider = "pgbackrest"
dsn = "env:D"
pg_bin_dir = "/usr/lib/postgresql/17/bin"
pgbackrest = { attach = true, stanza = "main" }

[environments.arch]
provider = "archive"
dsn = "env:D"
pg_bin_dir = "/usr/lib/postgresql/17/bin"
archive = { base_backups = "/srv/base", wal = "/srv/wal" }

[environments.bar]
provider = "barman-cloud"
dsn = "env:D"
pg_bin_dir = "/usr/lib/postgresql/17/bin"
barman_cloud = { destination = "s3://bucket/prefix", server_name = "pg" }
"""


def _config(root: Path, c: Cluster, name: str = "spectral.toml", others: str = "") -> Path:
    cfg = root / name
    cfg.write_text(f'default_environment = "tiny"\n\n[environments.tiny]\nprovider = "dsn"\n'
                   f'dsn = "{c.conninfo()}"\n'
                   f'schemas = ["public"]\nload_bearing_tables = []\n{others}')
    return cfg


def measure(n: int) -> dict[str, object]:
    spectral = spectral_argv()
    psql = str(find_binaries().path("psql"))
    out: dict[str, object] = {"machine": machine(), "rounds": n, "entry": spectral,
                              "loadavg": os.getloadavg()}
    with workspace() as root, tempfile.TemporaryDirectory(dir=root) as empty:
        here = Path(empty)
        out["python -c pass"] = rounds(n, lambda: timed([sys.executable, "-c", "pass"], here)[1])
        out["spectral --help"] = rounds(n, lambda: timed([*spectral, "--help"], here)[1])
        out["spectral --version"] = rounds(n, lambda: timed([*spectral, "--version"], here)[1])
        out["spectral dr status (empty configuration)"] = rounds(
            n, lambda: timed([*spectral, "dr", "status"], here, ok=(0, 1))[1])   # 1: overdue
        c = _cluster(root)
        try:
            cfg = _config(root, c)
            out["psql -c 'select 1'"] = rounds(
                n, lambda: timed([psql, "-X", "-d", c.conninfo(), "-c", "select 1"], here)[1])
            out["psql: first SQL"] = rounds(n, lambda: sql_start(
                [psql, "-X", "-d", c.conninfo(), "-c", "select 1"], here, c.log_file,
                "[psql]")[0])
            out["spectral dr fingerprint: first SQL"] = rounds(n, lambda: sql_start(
                [*spectral, "--config", str(cfg), "dr", "fingerprint"], here, c.log_file,
                "[spectral]")[0])
            out["spectral dr fingerprint"] = rounds(n, lambda: timed(
                [*spectral, "--config", str(cfg), "dr", "fingerprint"], here)[1])
            seven = _config(root, c, "seven.toml", OTHERS)
            out["spectral dr fingerprint, 7 environments: first SQL"] = rounds(
                n, lambda: sql_start([*spectral, "--config", str(seven), "dr", "fingerprint"],
                                     here, c.log_file, "[spectral]")[0])
        finally:
            c.stop()
    out["loadavg_after"] = os.getloadavg()
    return out


def report(run: dict[str, object]) -> str:
    def med(key: str) -> float:
        value = run[key]
        assert isinstance(value, dict)
        return float(value["median_s"])

    py, psql, psql_sql = med("python -c pass"), med("psql -c 'select 1'"), med("psql: first SQL")
    lines = [f"{run['machine']}; {run['rounds']} rounds, medians; load average before "
             f"{run['loadavg']}, after {run['loadavg_after']} (other work on the machine)",
             "| what | median (wall) | CPU of the process | x python -c pass | x psql |",
             "|---|---|---|---|---|"]
    for key, value in run.items():
        if not isinstance(value, dict):
            continue
        floor = psql_sql if key.endswith("first SQL") else psql
        cpu = value.get("cpu_median_s")
        shown = "-" if cpu is None or key.endswith("first SQL") else f"{float(cpu) * 1000:.0f} ms"
        lines.append(f"| {key} | {value['median_s'] * 1000:.0f} ms | {shown} | "
                     f"{value['median_s'] / py:.1f}x | {value['median_s'] / floor:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, help="write the run as JSON here too")
    args = ap.parse_args()
    run = measure(args.rounds)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(run, indent=2) + "\n")
    print(report(run))


if __name__ == "__main__":
    main()
