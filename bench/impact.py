"""What a drill costs production (issue 32, item 2): pgbench on the source, alone and with a
`dr drill functional --content` running, for each place the drill reads the source from:

- primary: the snapshot and its content scan on the source itself (the default);
- replica: on a streaming replica of it (`snapshot_dsn`; hot_standby_feedback off, as
  PostgreSQL ships it);
- feedback: the same replica with hot_standby_feedback on (the primary's horizon is held);
- patient: the same replica with max_standby_streaming_delay = -1 (replay waits for the scan,
  however long: the replica falls behind, the primary pays nothing; a replica kept for reading
  and drills, not one that fails over);
- throttle: on the source, the scan limited to --throttle MB/s (`source_read_rate`).

Two loads: a fixed rate (pgbench --rate, the latency a client sees includes the schedule lag)
and a saturating one (as fast as --clients sessions go). For each run: TPS and p50/p99 latency
(from pgbench's per-transaction log) in two windows, the drill's snapshot (its `provision`
step, what reads the source, placed back from the drill's end by the steps after it) and the
whole drill (its process, start to exit), against the same windows of the run without a
drill; how long the drill held the source's xmin horizon (the drill's own `xmin_held`, and the
oldest backend_xmin of a spectral session on the source, sampled every 0.1 s, in
transactions); the bloat added (the pgbench tables' growth during the run beyond the same
run's without a drill: what vacuum could not reclaim).

The environment is a `local` one: spectral runs the source and restores the copy on this host,
and the drill's process runs here too, so the whole-drill window includes the copy's restore
and the process's own CPU beside the source; the snapshot window only the snapshot (and what
else runs then). pgbench's tables are the protected schema.

With --pin the host is split in two as production and the drill's host would be: the source's
server (every backend it forks, the scans of a drill reading the primary among them) and pgbench
on CPU 0; the replica, the drill's process and the copy it restores on the other CPUs. Without
it everything shares every core (one small host doing all of it).

    PYTHONPATH=src:bench .venv/bin/python bench/impact.py --scale 1 --seconds 10
    PYTHONPATH=src:bench .venv/bin/python bench/impact.py --scale 70 --seconds 120 \\
        --rate 500 --clients 8 --throttle 50 --out bench/out/impact-1gb-N.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

import spectral
from common import machine, workspace
from spectral.pg.binaries import PgBinaries, find_binaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.conn import connect
from spectral.pg.osuser import make_owned_dir, server_identity
from spectral.runner import run

CONFIG = """default_environment = "source"

[environments.source]
provider = "local"
posture = "pro"
schemas = ["public"]
load_bearing_tables = ["public.pgbench_accounts"]
"""
UPDATED = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers")   # bloat: their growth
TABLES = (*UPDATED, "pgbench_history")                                  # vacuumed before a run
XMIN_SQL = ("select coalesce(max(age(backend_xmin)), 0) from pg_stat_activity "
            "where application_name = 'spectral' and backend_xmin is not null")
# the oldest xmin the primary keeps for a replica's feedback, and how far the replica's replay
# is behind the primary's WAL
REPLICA_SQL = ("select coalesce(max(age(s.backend_xmin)), 0), coalesce(max(pg_wal_lsn_diff("
               "pg_current_wal_lsn(), s.replay_lsn)), 0)::bigint from pg_stat_replication s")


def _env() -> dict[str, str]:
    """The spectral this script imported, byte-compiled (as bench/fixed_costs.py)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(spectral.__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env


def _spectral(here: Path, *args: str, ok: tuple[int, ...] = (0,)
              ) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(Path(sys.executable).parent / "spectral"), *args]
    done = subprocess.run(argv, cwd=here, env=_env(), capture_output=True, text=True,
                          timeout=24 * 3600, check=False)
    if done.returncode not in ok:
        # what the drill found is in its JSON (stdout): a failed check names itself there
        raise SystemExit(f"spectral {' '.join(args)}: exit {done.returncode}: {done.stderr}\n"
                         f"{done.stdout[-6000:]}")
    return done


def _prepare(here: Path, bins: PgBinaries, scale: int) -> str:
    """The local environment `source` with pgbench's tables at `scale`, one backup: its DSN."""
    (here / "spectral.toml").write_text(CONFIG)
    _spectral(here, "local", "up")
    dsn = json.loads(_spectral(here, "local", "status", "--json").stdout)["dsn"]
    run([bins.path("pgbench"), "-i", "-q", "-s", str(scale), "-d", dsn], timeout=24 * 3600)
    with connect(dsn) as conn:
        conn.execute("vacuum analyze")
    _spectral(here, "dr", "backup")
    return str(dsn)


def _pin_server(dsn: str, cpus: set[int]) -> None:
    """Move the server behind `dsn` to `cpus`: its postmaster (the backends it forks later
    inherit it) and the processes it has forked already."""
    with connect(dsn) as conn:   # the backend is read while it lives: its parent is the postmaster
        backend = int(conn.execute("select pg_backend_pid()").fetchone()[0])  # type: ignore[index]
        postmaster = int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])
    children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
    for pid in (postmaster, *map(int, children)):
        with contextlib.suppress(ProcessLookupError):    # a backend that ended meanwhile
            os.sched_setaffinity(pid, cpus)


def _replica(root: Path, bins: PgBinaries, dsn: str) -> Cluster:
    """A streaming replica of the source (pg_basebackup -R as the server's user), started."""
    parts = conninfo_to_dict(dsn)
    home = make_owned_dir(root / "replica", 0o755)
    run([bins.path("pg_basebackup"), "-D", str(home / "data"), "-R", "-X", "stream", "-c",
         "fast", "-h", str(parts["host"]), "-p", str(parts["port"]), "-U", str(parts["user"])],
        timeout=24 * 3600, run_as=server_identity())
    replica = Cluster(bins, home / "data", socket_dir_for(home / "run"), free_port(),
                      home / "log" / "postgres.log", superuser=str(parts["user"]),
                      database=str(parts.get("dbname", "postgres")), port_chosen=True)
    replica.start()
    return replica


def _configure(here: Path, mode: str, replica_dsn: str, throttle: float) -> None:
    extra = {"primary": "", "replica": f"snapshot_dsn = '{replica_dsn}'\n",
             "feedback": f"snapshot_dsn = '{replica_dsn}'\n",
             "patient": f"snapshot_dsn = '{replica_dsn}'\n",
             "throttle": f"source_read_rate = {throttle}\n"}[mode]
    (here / "spectral.toml").write_text(CONFIG + extra)
    with connect(replica_dsn, autocommit=True) as conn:   # ALTER SYSTEM works on a standby
        conn.execute(f"alter system set hot_standby_feedback = {mode == 'feedback'}")
        # PostgreSQL's default (30 s) unless the mode waits for the scan however long
        conn.execute("alter system set max_standby_streaming_delay = "
                     + ("-1" if mode == "patient" else "'30s'"))
        conn.execute("select pg_reload_conf()")


def _size(dsn: str) -> int:
    """The bytes of the tables pgbench updates (history is only appended to), indexes and
    TOAST included."""
    with connect(dsn) as conn:
        row = conn.execute("select sum(pg_total_relation_size(c.oid))::bigint from pg_class c "
                           "where c.relname = any(%s) and c.relnamespace = 'public'::regnamespace",
                           (list(UPDATED),)).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


class XminSampler:
    """The oldest backend_xmin of a spectral session on the source, every 0.1 s."""

    def __init__(self, dsn: str) -> None:
        self.dsn, self.max_age, self.seconds = dsn, 0, 0.0
        self.feedback_age, self.lag_bytes = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> XminSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with connect(self.dsn) as conn:
            while not self._stop.wait(0.1):
                age = int(conn.execute(XMIN_SQL).fetchone()[0])
                self.max_age = max(self.max_age, age)
                self.seconds += 0.1 if age else 0.0
                held, lag = conn.execute(REPLICA_SQL).fetchone()
                self.feedback_age = max(self.feedback_age, int(held))
                self.lag_bytes = max(self.lag_bytes, int(lag))


def _pgbench(bins: PgBinaries, dsn: str, load: dict[str, Any], seconds: int,
             logs: Path) -> subprocess.Popen[bytes]:
    argv = [bins.path("pgbench"), "-n", "-T", str(seconds), "-c", str(load["clients"]),
            "-j", str(min(2, load["clients"])), "-l", f"--log-prefix={logs}/tx", "-d", dsn]
    if load["rate"]:
        argv[1:1] = ["-R", str(load["rate"])]
    cpus = load.get("cpus")
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)


def _transactions(logs: Path) -> list[tuple[float, float]]:
    """(completion epoch, latency ms) of every transaction pgbench logged; with --rate the
    latency includes the schedule lag (what a client waiting for its answer sees)."""
    out = []
    for path in logs.glob("tx*"):
        for line in path.read_text().splitlines():
            f = line.split()
            if len(f) < 6 or not f[2].isdigit():
                continue               # a failed or skipped transaction
            lag = int(f[6]) if len(f) > 6 and f[6].isdigit() else 0
            out.append((int(f[4]) + int(f[5]) / 1e6, (int(f[2]) + lag) / 1000))
    return sorted(out)


def one_run(here: Path, bins: PgBinaries, dsn: str, load: dict[str, Any], mode: str | None,
            args: argparse.Namespace) -> dict[str, Any]:
    """One pgbench run of --seconds, a drill started --delay seconds in (mode: where it reads
    the source) or none."""
    with connect(dsn) as conn:
        conn.execute("vacuum " + ", ".join(f"public.{t}" for t in TABLES))
    before = _size(dsn)
    with tempfile.TemporaryDirectory() as logs, XminSampler(dsn) as xmin:
        start = time.time()
        bench = _pgbench(bins, dsn, load, args.seconds, Path(logs))
        drill: dict[str, Any] | None = None
        if mode is not None:
            time.sleep(args.delay)
            at = time.time()
            # a drill that fails or cannot verify is a result of the run, printed and kept
            done = _spectral(here, "dr", "drill", "functional", "--content", "--json",
                             ok=(0, 1, 3))
            result = json.loads(done.stdout)
            if done.returncode:
                print(f"drill ({mode}, {load['name']}): exit {done.returncode}: "
                      f"{result.get('error') or done.stdout[-4000:]}", file=sys.stderr)
            drill = {"start": at - start, "end": time.time() - start,
                     "outcome": result["outcome"], "timings": result["timings"],
                     "error": result.get("error")}
        said, _ = bench.communicate(timeout=args.seconds + 600)
        if bench.returncode != 0:
            raise SystemExit(f"pgbench: exit {bench.returncode}: {said.decode()[-2000:]}")
        tx = [(t - start, ms) for t, ms in _transactions(Path(logs))]
    return {"load": load["name"], "mode": mode or "none", "seconds": args.seconds,
            "drill": drill, "tx": tx, "grown_bytes": _size(dsn) - before,
            "xmin_age_max": xmin.max_age, "xmin_sampled_s": round(xmin.seconds, 1),
            "feedback_xmin_age_max": xmin.feedback_age, "replica_lag_bytes_max": xmin.lag_bytes}


def window(tx: list[tuple[float, float]], t0: float, t1: float) -> dict[str, float]:
    """TPS and latency percentiles of the transactions completed in [t0, t1) (run seconds)."""
    lat = [ms for t, ms in tx if t0 <= t < t1]
    if len(lat) < 2 or t1 <= t0:
        return {"tps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "n": len(lat)}
    cuts = statistics.quantiles(lat, n=100)
    return {"tps": len(lat) / (t1 - t0), "p50_ms": cuts[49], "p99_ms": cuts[98], "n": len(lat)}


def compare(base: dict[str, Any], run_: dict[str, Any]) -> dict[str, Any]:
    """The run with a drill against the run without, in the drill's two windows."""
    d, t = run_["drill"], run_["drill"]["timings"]
    # the snapshot (the step that reads the source: `provision`) ends where the steps after it
    # begin: placed from the drill's end (the process's own start comes before it)
    snap_end = d["end"] - sum(t.get(k, 0.0) for k in ("restore", "verify", "integrity",
                                                      "teardown"))
    snap_start = max(d["start"], snap_end - t.get("provision", 0.0))
    out: dict[str, Any] = {"load": run_["load"], "mode": run_["mode"],
                           "drill_outcome": d["outcome"],
                           "xmin_held_s": d["timings"].get("xmin_held"),
                           "xmin_age_max": run_["xmin_age_max"],
                           "feedback_xmin_age_max": run_["feedback_xmin_age_max"],
                           "replica_lag_bytes_max": run_["replica_lag_bytes_max"],
                           "replica_lag_alone_bytes_max": base["replica_lag_bytes_max"],
                           "bloat_added_bytes": run_["grown_bytes"] - base["grown_bytes"],
                           "drill_past_pgbench": d["end"] > run_["seconds"]}
    for name, (t0, t1) in {"snapshot": (snap_start, min(snap_end, run_["seconds"])),
                           "drill": (d["start"], min(d["end"], run_["seconds"]))}.items():
        alone, with_ = window(base["tx"], t0, t1), window(run_["tx"], t0, t1)
        out[name] = {"alone": alone, "with_drill": with_,
                     "tps_ratio": with_["tps"] / alone["tps"] if alone["tps"] else None,
                     "p99_ratio": with_["p99_ms"] / alone["p99_ms"] if alone["p99_ms"] else None}
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    bins = find_binaries(None)
    production = {0} if args.pin else None
    loads = [load for load in (
        {"name": f"fixed {args.rate} tps", "rate": args.rate, "clients": args.clients,
         "cpus": production, "kind": "fixed"},
        {"name": "saturating", "rate": 0, "clients": args.clients, "cpus": production,
         "kind": "saturating"}) if load["kind"] in args.loads]
    out: dict[str, Any] = {"machine": machine(), "postgres": bins.version, "args": vars(args),
                           "loadavg": os.getloadavg(), "results": []}
    if args.pin:
        # everything this process starts from here on runs off production's CPU
        os.sched_setaffinity(0, os.sched_getaffinity(0) - {0})
    with workspace() as root:
        here = root
        dsn = _prepare(here, bins, args.scale)
        if production:
            _pin_server(dsn, production)
        replica = _replica(root, bins, dsn)
        try:
            replica_dsn = make_conninfo(dsn, host=str(replica.socket_dir),
                                        port=str(replica.port))
            for load in loads:
                base = one_run(here, bins, dsn, load, None, args)
                for mode in args.modes:
                    _configure(here, mode, replica_dsn, args.throttle)
                    out["results"].append(compare(base, one_run(here, bins, dsn, load, mode,
                                                                args)))
        finally:
            replica.stop(timeout=60)
            _spectral(here, "local", "down")
    out["loadavg_after"] = os.getloadavg()
    return out


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(run_: dict[str, Any]) -> str:
    lines = [f"{run_['machine']}; PostgreSQL {run_['postgres']}; pgbench -s "
             f"{run_['args']['scale']}, {run_['args']['seconds']} s runs, drill after "
             f"{run_['args']['delay']} s; load average {run_['loadavg']} -> "
             f"{run_['loadavg_after']}",
             "| load | drill reads | snapshot window: TPS ratio, p99 ratio | whole drill: TPS "
             "ratio, p99 ratio | xmin held (s), oldest xmin (xids) | bloat added | replica "
             "lag, alone -> with | outcome |",
             "|---|---|---|---|---|---|---|---|"]
    for r in run_["results"]:
        s, d = r["snapshot"], r["drill"]
        late = " (drill outlasted pgbench: --seconds too short)" if r["drill_past_pgbench"] else ""
        lines.append(f"| {r['load']} | {r['mode']} | {_ratio(s['tps_ratio'])}, "
                     f"{_ratio(s['p99_ratio'])} | {_ratio(d['tps_ratio'])}, "
                     f"{_ratio(d['p99_ratio'])} | {r['xmin_held_s']}, "
                     f"{max(r['xmin_age_max'], r.get('feedback_xmin_age_max', 0))} | "
                     f"{r['bloat_added_bytes'] / 1e6:+.1f} MB | "
                     f"{r.get('replica_lag_alone_bytes_max', 0) / 1e6:.1f} -> "
                     f"{r.get('replica_lag_bytes_max', 0) / 1e6:.1f} MB | "
                     f"{r['drill_outcome']}{late} |")
    lines.append("xmin held (s): the drill's snapshot's (with `replica`, on the replica: the "
                 "primary's horizon is held only with hot_standby_feedback); oldest xmin: the "
                 "largest age(backend_xmin) of a spectral session sampled on the primary.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=1, help="pgbench -s (70: ~1 GB)")
    ap.add_argument("--seconds", type=int, default=10, help="each pgbench run")
    ap.add_argument("--delay", type=float, default=2.0, help="seconds before the drill starts")
    ap.add_argument("--rate", type=int, default=100, help="the fixed load, transactions/s")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--throttle", type=float, default=5.0, help="source_read_rate, MB/s")
    ap.add_argument("--modes", nargs="+", default=["primary", "replica", "throttle"],
                    choices=["primary", "replica", "feedback", "patient", "throttle"])
    ap.add_argument("--loads", nargs="+", default=["fixed", "saturating"],
                    choices=["fixed", "saturating"])
    ap.add_argument("--pin", action="store_true", help="the source and pgbench on CPU 0, the "
                    "replica, the drill and its copy on the others")
    ap.add_argument("--out", type=Path, help="write the run as JSON here too (without the "
                                             "transactions)")
    args = ap.parse_args()
    result = measure(args)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(report(result))


if __name__ == "__main__":
    main()
