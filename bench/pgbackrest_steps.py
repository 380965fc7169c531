#!/usr/bin/env python3
"""Where `spectral dr restore --latest` spends its time on a pgBackRest environment (issue 32,
item 3): the same world as bench/pgbackrest.py (a POSIX repository and an S3 one, moto over TLS
on 127.0.0.1), one backup into repo1, then restores as fresh processes, each traced step by
step: the time since the fork of every step's start and end (the interpreter's start, the
imports, the flush, the window, pgbackrest restore, the ownership passes, recovery) and every
program it runs. Cold (caches dropped before the round, as bench/pgbackrest.py) and warm.

    PYTHONPATH=src:tests .venv/bin/python bench/pgbackrest_steps.py --scale 5 --rounds 3

The child side (`--child`) wraps the functions named in STEPS and runs the command line in
its own process; nothing of it is in the library.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

STEPS = [     # the runner's first: the modules imported after it bind the traced `run`
    ("spectral.runner", "start_watchdog", "watchdog start"),
    ("spectral.runner", "run", "run"),
    ("os", "fsync", "fsync"),
    ("spectral.environment", "open_environment", "open environment"),
    ("spectral.providers.local.provider", "ManagedProvider.busy", "operation lock"),
    ("spectral.providers.local.provider", "ManagedProvider.flush_archive", "flush"),
    ("spectral.providers.local.provider", "ManagedProvider.window", "window"),
    ("spectral.providers.local.window", "usable_backups", "usable backups"),
    ("spectral.providers.local.window", "breaks", "breaks (walcheck)"),
    ("spectral.providers.local.window", "_last_record", "last record"),
    ("spectral.providers.local.consistency", "consistent_times", "consistent times"),
    ("spectral.providers.local.throwaway", "plan", "plan"),
    ("spectral.providers.local.throwaway", "Throwaways._early_plan", "early plan"),
    ("spectral.providers.local.throwaway", "Throwaways._plan_while_copying",
     "copy while planning"),
    ("spectral.providers.pgbackrest.repo", "PgBackRestRepository._archive_listings",
     "info and repo-ls"),
    ("spectral.providers.pgbackrest.repo", "PgBackRestRepository._still_current",
     "sha1 of a mirrored file"),
    ("spectral.providers.pgbackrest.repo", "PgBackRestRepository._get", "fetch a WAL file"),
    ("spectral.providers.pgbackrest.restore", "PgBackRestRestorer.materialize", "materialize"),
    ("spectral.providers.local.instances", "Registry.register_start", "registry start"),
    ("spectral.providers.local.instances", "Registry.write", "registry write"),
    ("spectral.providers.local.throwaway", "cut_off", "cut off"),
    ("spectral.providers.local.restore", "Recovery.prepare_recovery", "prepare recovery"),
    ("spectral.providers.local.restore", "Recovery._same_segment_size", "same segment size"),
    ("spectral.providers.local.restore", "Recovery._take_branch_segments", "branch segments"),
    ("spectral.providers.local.restore", "give_to_server", "chown walk"),
    ("spectral.providers.local.restore", "Recovery.recover", "recover"),
    ("spectral.pg.cluster", "Cluster.start", "server start"),
    ("spectral.cli.state", "AppState.emit", "emit"),
]


def _child(argv: list[str]) -> None:
    here = {str(Path(__file__).parent), str(Path(__file__).parent.parent / "tests")}
    sys.path[:] = [p for p in sys.path if p not in here]   # the command line's own path
    t0 = float(os.environ["TRACE_T0"])
    spans: list[tuple[float, float, int, str]] = []
    local = threading.local()     # each thread's depth (a copy can run beside the plan)
    up = time.monotonic() - t0

    def wrap(module: str, dotted: str, label: str) -> None:
        mod = importlib.import_module(module)
        owner: Any = mod
        *path, name = dotted.split(".")
        for part in path:
            owner = getattr(owner, part)
        fn = getattr(owner, name, None)
        if fn is None:      # a step of another version of the code
            return

        @functools.wraps(fn)
        def traced(*args: Any, **kwargs: Any) -> Any:
            what = label
            if label == "run":
                words = [Path(a).name for a in args[0] if not a.startswith("-")][:3]
                what = "run " + " ".join(words)
            if threading.current_thread() is not threading.main_thread():
                what = "|| " + what
            start, d = time.monotonic() - t0, getattr(local, "depth", 0)
            local.depth = d + 1
            try:
                return fn(*args, **kwargs)
            finally:
                local.depth = d
                spans.append((start, time.monotonic() - t0, d, what))

        static = isinstance(inspect.getattr_static(owner, name), staticmethod)
        setattr(owner, name, staticmethod(traced) if static else traced)

    from spectral.cli.main import run_cli
    for module, dotted, label in STEPS:     # imports the restore's modules
        if label != "operation lock":
            wrap(module, dotted, label)
    _wrap_busy(spans, local, t0)
    imported = time.monotonic() - t0
    code = run_cli(argv)
    done = time.monotonic() - t0
    Path(os.environ["TRACE_OUT"]).write_text(json.dumps({
        "code": code, "python_up": up, "imported": imported, "done": done,
        "spans": sorted(spans)}))
    sys.exit(code)


def _wrap_busy(spans: list[tuple[float, float, int, str]], local: threading.local,
               t0: float) -> None:
    """The operation lock is a context manager: its entry is traced (the lock and the
    recovery of an interrupted operation), not the whole restore inside it."""
    import contextlib

    from spectral.providers.local import provider

    orig = provider.ManagedProvider.busy

    @contextlib.contextmanager
    def busy(self: Any, what: str) -> Any:
        start = time.monotonic() - t0
        with orig(self, what):
            spans.append((start, time.monotonic() - t0, getattr(local, "depth", 0),
                          "operation lock"))
            yield

    provider.ManagedProvider.busy = busy  # type: ignore[method-assign]


def traced_restore(root: Path, env: dict[str, str], pm: int, out: Path,
                   importtime: bool = False) -> dict[str, Any]:
    argv = [sys.executable, *(["-X", "importtime"] if importtime else []), __file__, "--child",
            "dr", "restore", "--latest", "--process-max", str(pm), "--json"]
    child_env = {**os.environ, **env, "TRACE_OUT": str(out)}
    child_env.pop("PYTHONDONTWRITEBYTECODE", None)     # as an installed tool runs
    child_env["TRACE_T0"] = repr(time.monotonic())
    started = time.monotonic()
    res = subprocess.run(argv, cwd=root, env=child_env, capture_output=True, text=True,
                         timeout=3600, check=False)
    wall = time.monotonic() - started
    if res.returncode != 0:
        raise SystemExit(f"traced restore: {res.stderr.strip()[-2000:]}")
    doc: dict[str, Any] = json.loads(out.read_text())
    doc["wall"] = wall
    doc["instance"] = json.loads(res.stdout)["id"]
    if importtime:
        doc["importtime"] = res.stderr
    return doc


def _table(rounds: list[dict[str, Any]]) -> list[str]:
    """Median start, end and duration of every span label (in its first round's order)."""
    by: dict[tuple[int, str], list[tuple[float, float]]] = {}
    order: list[tuple[int, str]] = []
    for r in rounds:
        seen: dict[tuple[int, str], int] = {}
        for start, end, depth, what in r["spans"]:
            key = (depth, what)
            n = seen.get(key, 0)
            seen[key] = n + 1
            k = (depth, f"{what} #{n + 1}" if n else what)
            if k not in by:
                order.append(k)
            by.setdefault(k, []).append((start, end))
    lines = [f"{'step':<48} {'start':>7} {'end':>7} {'took':>7}  (median s, {len(rounds)} rounds)"]
    for r_key in ("python_up", "imported", "done", "wall"):
        lines.append(f"{r_key:<48} {'':>7} "
                     f"{statistics.median(r[r_key] for r in rounds):7.3f}")
    firsts = {k: statistics.median(s for s, _ in v) for k, v in by.items()}
    for k in sorted(order, key=lambda k: firsts[k]):
        v = by[k]
        lines.append(f"{'  ' * k[0] + k[1]:<48} {statistics.median(s for s, _ in v):7.3f} "
                     f"{statistics.median(e for _, e in v):7.3f} "
                     f"{statistics.median(e - s for s, e in v):7.3f}"
                     + ("" if len(v) == len(rounds) else f"  (in {len(v)} rounds)"))
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--process-max", type=int, default=1)
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()
    from pgbackrest import floor_restore, spectral, world  # bench/pgbackrest.py
    from restore import cold

    results: dict[str, Any] = {"load_before": os.getloadavg()}
    with world(args.scale) as (root, env, pgb_env):
        b = spectral(root, env, "dr", "backup", "--repo", "1", "--json")
        trace = root / "trace.json"
        for mode in ("cold", "warm"):
            rounds = []
            for _ in range(args.rounds):
                floor = floor_restore(root, pgb_env, b["id"], 1, args.process_max)
                if mode == "cold":
                    cold()
                r = traced_restore(root, env, args.process_max, trace)
                r["floor"] = floor
                spectral(root, env, "dr", "teardown", r["instance"])
                rounds.append(r)
            results[mode] = rounds
            print(f"\n== {mode}: floor {[r['floor'] for r in rounds]} s, spectral "
                  f"{[round(r['wall'], 2) for r in rounds]} s, load {os.getloadavg()}")
            print("\n".join(_table(rounds)), flush=True)
        r = traced_restore(root, env, args.process_max, trace, importtime=True)
        spectral(root, env, "dr", "teardown", r["instance"])
        results["importtime"] = r["importtime"]
    results["load_after"] = os.getloadavg()
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        main()
