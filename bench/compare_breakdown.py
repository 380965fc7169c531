#!/usr/bin/env python3
"""Where the time of `spectral dr compare SNAPSHOT COPY --content` goes, against its floor (a
scan reading every column of every row of the copy, same sessions and TID ranges: what any
tool that checks the copy's content must at least do).

    PYTHONPATH=src:bench .venv/bin/python bench/compare_breakdown.py SNAPSHOT COPY_DSN [--rounds 3]

Measured on a database and snapshot that exist (bench/curves.py's, or any restored copy and a
fingerprint of its source), warm, best of `--rounds`:
- the command as a process (wall), the interpreter alone (`python -c pass`), and the imports of
  the command (`-X importtime`, top-level modules' cumulative time);
- the same work in this process (the snapshot loaded, the copy fingerprinted, the comparison),
  with a timeline of its steps (start and end of each, seconds from the start);
- the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import command, machine
from spectral.verify import compare as compare_mod
from spectral.verify import content, fingerprint, targets
from verify import scan_with

SPECTRAL = str(Path(sys.executable).parent / "spectral")
STEPS = {fingerprint: ("_sequences", "_begin", "_control", "_last_commit", "read_collations",
                       "_existing", "describe_schema", "describe_database", "_partitions",
                       "held_through", "document"),
         content: ("plan_tables", "scan"), targets: ("load",)}


def best(fn: Callable[[], Any], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.monotonic()
        fn()
        times.append(time.monotonic() - started)
    return round(min(times), 3)


def process(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False,
                          env={**os.environ, "COLUMNS": "200"})


def import_seconds(args: list[str]) -> dict[str, float]:
    """The command's imports (`-X importtime`): each top-level import's cumulative time, the
    largest first, and their total (the interpreter's own start-up imports included)."""
    code = ("import sys; from spectral.cli.main import main; "
            f"sys.argv = ['spectral', *{args!r}]; main()")
    err = process([sys.executable, "-X", "importtime", "-c", code]).stderr
    top: dict[str, float] = {}
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|", 2)
        if name.startswith("  "):    # imported by another module: inside its cumulative time
            continue
        top[name.strip()] = top.get(name.strip(), 0) + int(cumulative) / 1e6
    largest = dict(sorted(top.items(), key=lambda kv: -kv[1])[:12])
    return {"total": round(sum(top.values()), 3),
            **{k: round(v, 3) for k, v in largest.items()}}


class Timeline:
    """Start and end of each wrapped step, seconds from `t0`, from any thread."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.events: list[tuple[str, float, float]] = []
        self.lock = threading.Lock()

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*a: Any, **kw: Any) -> Any:
            started = time.monotonic()
            try:
                return fn(*a, **kw)
            finally:
                with self.lock:
                    self.events.append((name, round(started - self.t0, 3),
                                        round(time.monotonic() - self.t0, 3)))
        return timed


def in_process(snap: Path, copy: str) -> tuple[float, list[tuple[str, float, float]]]:
    """What `dr compare` does after its imports, with its steps on a timeline."""
    line = Timeline()
    saved = [(mod, name, getattr(mod, name)) for mod, names in STEPS.items() for name in names]
    for mod, name, fn in saved:
        setattr(mod, name, line.wrap(f"{mod.__name__.rsplit('.', 1)[1]}.{name}", fn))
    try:
        def config() -> Any:
            raise AssertionError("a snapshot against a DSN loads no configuration")

        (a, _), (b, _) = targets.fingerprint_pair(config, str(snap), copy, schemas=None,
                                                  content=True, workers=None)
        line.wrap("compare", compare_mod.compare)(a, b)
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)
    return round(time.monotonic() - line.t0, 3), line.events


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("snapshot", type=Path)
    ap.add_argument("copy")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    argv = ["--json", "dr", "compare", str(args.snapshot), args.copy, "--content"]
    schemas = tuple(fingerprint.load(args.snapshot).schemas)
    workers = len(os.sched_getaffinity(0))
    scan_with(args.copy, content.Method.FLOOR, workers, schemas)   # warm, as the others are
    out: dict[str, Any] = {"machine": machine(), "command": command(),
                           "load_before": os.getloadavg()}
    done = process([SPECTRAL, *argv])
    assert done.returncode == 0, done.stderr[-500:]
    out["process_s"] = best(lambda: process([SPECTRAL, *argv]), args.rounds)
    out["interpreter_s"] = best(lambda: process([sys.executable, "-c", "pass"]), args.rounds)
    out["imports_s"] = import_seconds(argv)
    runs = [in_process(args.snapshot, args.copy) for _ in range(args.rounds)]
    out["in_process_s"], out["timeline"] = min(runs, key=lambda r: r[0])
    out["floor_scan_s"] = best(lambda: scan_with(args.copy, content.Method.FLOOR, workers,
                                                 schemas), args.rounds)
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
