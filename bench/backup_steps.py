#!/usr/bin/env python3
"""`spectral dr backup` against its floor in bench/curves.py (`pg_basebackup -Fp -X fetch -c fast`,
its own fsync included), at one size, round by round, and where each one's time goes
(issue 32, item 3: the backup within 1.3x of pg_basebackup at 1 GB).

    PYTHONPATH=src:bench .venv/bin/python bench/backup_steps.py --size 1 --rounds 3 [--trace]

One embedded environment (`spectral local up`, `spectral db seed`), then rounds that alternate
which of the two runs first, each cold (caches dropped, as curves.py does):
- `spectral dr backup` as a process, as a user runs it (the older backups expired after it,
  not timed);
- the floor, as curves.py runs it;
- the floor's parts: the same pg_basebackup with --no-sync, one `sync --file-system` of its
  copy, then pg_verifybackup of it (the check the floor leaves out), each timed.
With --trace, one more `dr backup` under strace (the programs it starts, its connections,
locks, renames and syncs, with timestamps): where its time goes, step by step. The trace slows
what it traces; its total is compared with nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import spectral
from common import machine
from curves import SCALES, SPECTRAL, Bench
from restore import cold
from spectral.pg.conn import connect
from spectral.pg.osuser import make_owned_dir, server_identity
from spectral.providers.local.backup import basebackup_argv
from spectral.runner import run


def timed(argv: list[str], **kw: Any) -> float:
    started = time.monotonic()
    run(argv, timeout=7200, **kw)
    return round(time.monotonic() - started, 3)


def floor(b: Bench, dsn: str, *, parts: bool) -> dict[str, float]:
    """curves.py's floor; with `parts`, its copy (--no-sync), its sync and a verification."""
    bins = b.provider().bins
    dest = make_owned_dir(b.root / "basebackup", 0o700)
    argv = [str(bins.path("pg_basebackup")), "-D", str(dest), "-Fp", "-X", "fetch", "-c",
            "fast", "-d", dsn]
    try:
        if not parts:
            return {"seconds": timed(argv, run_as=server_identity())}
        out = {"copy_no_sync": timed([*argv, "--no-sync"], run_as=server_identity())}
        out["syncfs"] = timed(["sync", "--file-system", str(dest)])
        out["verifybackup"] = timed([str(bins.path("pg_verifybackup")), "--quiet", str(dest)],
                                    run_as=server_identity())
        shutil.rmtree(dest, ignore_errors=True)
        cold()
        # the copy as `dr backup` makes it (-X stream, its watchdog), without its sync
        dest = make_owned_dir(b.root / "basebackup", 0o700)
        started = time.monotonic()
        run(basebackup_argv(bins, dsn, dest, "bench"), timeout=7200, run_as=server_identity(),
            forks=True)
        out["copy_as_ours"] = round(time.monotonic() - started, 3)
        return out
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def ours(b: Bench, src: Path) -> dict[str, Any]:
    """`dr backup` with the spectral of `src` (a tree's src/ folder)."""
    b.env["PYTHONPATH"] = str(src)
    r = b.cli("dr", "backup")
    assert r["exit"] == 0, r
    b.env["PYTHONPATH"] = str(HERE)
    assert b.cli("dr", "expire", "--keep", "1", "--yes")["exit"] == 0
    return {"seconds": r["seconds"]}


HERE = Path(spectral.__file__).resolve().parents[1]   # the src/ this script imported

EVENT_RE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(.*)$")


def trace(b: Bench) -> list[str]:
    """One `dr backup` under strace: a line per event, seconds since the process began."""
    out = b.root / "backup.trace"
    cold()
    subprocess.run(["strace", "-f", "-ttt", "--seccomp-bpf", "-s", "120", "-o", str(out),
                    "-e", "trace=execve,connect,flock,rename,syncfs,fsync,fdatasync,exit_group",
                    SPECTRAL, "dr", "backup"], cwd=b.root, env=b.env, check=True,
                   stdout=subprocess.DEVNULL)
    assert b.cli("dr", "expire", "--keep", "1", "--yes")["exit"] == 0
    lines, t0, fsyncs = [], None, 0
    for raw in out.read_text().splitlines():
        m = EVENT_RE.match(raw)
        if not m:
            continue
        pid, at, what = m.group(1), float(m.group(2)), m.group(3)
        t0 = at if t0 is None else t0
        if what.startswith(("fsync", "fdatasync", "<... fsync", "<... fdatasync")):
            fsyncs += 1
            continue
        if "resumed>" in what or what.startswith("--- SIG"):
            continue
        if fsyncs:
            lines.append(f"{'':>8}  {fsyncs} fsync/fdatasync")
            fsyncs = 0
        lines.append(f"{at - t0:8.3f}  {pid:>7} {short(what)}")
    return lines


def short(what: str) -> str:
    if what.startswith("execve("):
        args = re.findall(r'"([^"]*)"', what)
        return "exec " + " ".join(a.rsplit("/", 1)[-1] if i == 0 else a[:60]
                                  for i, a in enumerate(args[1:6]))
    return what[:150]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1", choices=sorted(SCALES))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--parts", action="store_true", help="the floor's parts in every round")
    ap.add_argument("--against", type=Path, help="another tree's src/: its `dr backup` too, "
                    "in every round (before/after)")
    args = ap.parse_args()
    b = Bench(SCALES[args.size])
    b.env["PYTHONPATH"] = str(HERE)     # the CLI runs in another folder: not a relative path
    out: dict[str, Any] = {"machine": machine(), "size_gb": args.size,
                           "load_before": os.getloadavg(), "rounds": []}
    try:
        assert b.cli("local", "up")["exit"] == 0
        assert b.cli("db", "seed", "--scale", str(SCALES[args.size]))["exit"] == 0
        dsn = b.provider().local.cluster().conninfo()
        with connect(dsn) as conn:
            conn.execute("vacuum analyze")
            conn.execute("checkpoint")
        kinds = ["ours", "floor", *(["before"] if args.against else [])]
        for i in range(args.rounds):
            rnd: dict[str, Any] = {"load": os.getloadavg()[0]}
            for which in kinds[i % len(kinds):] + kinds[:i % len(kinds)]:
                cold()
                rnd[which] = floor(b, dsn, parts=False) if which == "floor" else \
                    ours(b, args.against if which == "before" else HERE)
            if args.parts:
                cold()
                rnd["floor_parts"] = floor(b, dsn, parts=True)
            rnd["ratio"] = round(rnd["ours"]["seconds"] / rnd["floor"]["seconds"], 2)
            if args.against:
                rnd["ratio_before"] = round(rnd["before"]["seconds"] / rnd["floor"]["seconds"],
                                            2)
            out["rounds"].append(rnd)
            print(json.dumps(rnd), flush=True)
        for key in ("ratio", "ratio_before"):
            if args.against or key == "ratio":
                out[f"median_{key}"] = statistics.median(r[key] for r in out["rounds"])
        if args.trace:
            out["trace"] = trace(b)
        out["load_after"] = os.getloadavg()
    finally:
        b.close()
    print(json.dumps({k: v for k, v in out.items() if k != "trace"}, indent=1))
    print("\n".join(out.get("trace", [])))


if __name__ == "__main__":
    main()
