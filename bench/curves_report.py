"""Tables (Markdown, for bench/RESULTS.md) and a chart (bench/curves.svg) from the JSON runs
of bench/curves.py. Every ratio compares figures of the same run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

CHART = Path(__file__).parent / "curves.svg"
PROCESS_ROWS = ("fingerprint --content (process)",
                "compare snapshot vs restored copy (`dr compare` process)")
TARGETS = {"fingerprint": 1.5, "restore": 1.2, "compare_x": 10.0, "rss_mb": 200,
           "drill_overhead_s": 2.0}


def checks(size: dict[str, Any]) -> float:
    """The drill's physical checks of its copy (pg_amcheck, pg_checksums: issue 31, timed on
    their own floor by bench/integrity.py), outside the drill's floor and its overhead."""
    return float(size["drill"]["timings"].get("integrity", 0.0))


def best(rounds: list[dict[str, Any]], side: str) -> float:
    return float(min(r[side]["seconds"] for r in rounds))


def rows(size: dict[str, Any], one_gb: dict[str, Any] | None) -> dict[str, tuple[Any, ...]]:
    """operation -> (spectral s, floor s, floor name, peak RSS MB) of one size of one run."""
    restore = best(size["restore_rounds"], "spectral"), best(size["restore_rounds"], "floor")
    reladiff = reladiff_s(size)
    estimated = False
    at_1gb = reladiff_s(one_gb) if one_gb else None
    if reladiff is None and "reladiff" not in size and one_gb and at_1gb is not None:
        reladiff = at_1gb * size["database_mb"] / one_gb["database_mb"]   # not run at 10 GB
        estimated = True
    # the drill's floor: the restore's (copy and PostgreSQL's replay), two floor scans and
    # deleting the copy (runs before session 14 did not time the delete: 0 there)
    deleted = min(r["floor"].get("delete_seconds", 0.0) for r in size["restore_rounds"])
    drill_floor = restore[1] + 2 * size["fingerprint_floor_s"] + deleted
    rss = max(r["spectral"]["peak_rss_mb"] for r in size["restore_rounds"])
    cold = {}
    if "fingerprint_cold_s" in size:
        cold = {"fingerprint --content, cold cache (library)": (
            size["fingerprint_cold_s"], size["fingerprint_floor_cold_s"],
            "scan reading every column, cold", None)}
    return {
        "seed": (size["seed"]["seconds"], size["seed_floor"]["seconds"],
                 "COPY of pre-generated rows + same index builds", size["seed"]["peak_rss_mb"]),
        "full backup": (size["backup"]["seconds"], size["backup_floor"]["seconds"],
                        "pg_basebackup alone", size["backup"]["peak_rss_mb"]),
        "restore of latest (cold, best of 2)": (restore[0], restore[1],
                                                "cp -a + PostgreSQL replaying the same WAL", rss),
        "fingerprint --content (library)": (size["fingerprint_library_s"],
                                            size["fingerprint_floor_s"],
                                            "scan reading every column", None),
        "fingerprint --content (process)": (size["fingerprint"]["seconds"],
                                            size["fingerprint_floor_s"],
                                            "scan reading every column",
                                            size["fingerprint"]["peak_rss_mb"]),
        "compare snapshot vs restored copy (in the drill's process)": (
            size["compare_library_s"], reladiff,
            "reladiff" + (" (extrapolated from 1 GB)" if estimated else ""), None),
        "compare snapshot vs restored copy (`dr compare` process)": (
            size["compare"]["seconds"], reladiff,
            "reladiff" + (" (extrapolated from 1 GB)" if estimated else ""),
            size["compare"]["peak_rss_mb"]),
        "drill functional --content, less its physical checks": (
            size["drill"]["seconds"] - checks(size), drill_floor,
            "restore floor + 2 floor scans + deleting the copy", size["drill"]["peak_rss_mb"]),
        "the drill's physical checks of its copy": (checks(size), None, "bench/integrity.py",
                                                    None),
        **cold,
    }


def reladiff_s(size: dict[str, Any]) -> float | None:
    """reladiff's time at this size, only from a run checked table by table (bench/reladiff.py:
    every row of every table compared, nothing failed). Runs before session 15 kept only the
    total and the exit statuses, which reladiff sets to 0 on any error: no time from them."""
    rd = size.get("reladiff") or {}
    if "tables" not in rd or rd.get("failed") or rd.get("seconds") is None:
        return None
    return float(rd["seconds"])


def fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def table(label: str, runs: list[dict[str, Any]]) -> str:
    sizes = [r["sizes"][label] for r in runs]
    ones = [r["sizes"].get("1") for r in runs]
    out = [f"### {label} GB (database {', '.join(str(s['database_mb']) for s in sizes)} MB; "
           f"heap {', '.join(str(s['heap_mb']) for s in sizes)} MB)", "",
           "| operation | " + " | ".join(f"{r['label']}: spectral / floor = ratio"
                                         for r in runs)
           + " | floor | peak RSS (MB) |",
           "|---|" + "---|" * len(runs) + "---|---|"]
    per_run = [rows(s, o) for s, o in zip(sizes, ones, strict=True)]
    for op in dict.fromkeys(k for r in per_run for k in r):
        cells = []
        for r in per_run:
            if op not in r:
                cells.append("not measured")
                continue
            ours, floor, _, _ = r[op]
            if floor is None:
                cells.append(f"{fmt(ours)} s / –")
            elif op.startswith("compare"):
                cells.append(f"{fmt(ours)} / {fmt(floor)} s: **{floor / ours:.1f}x faster**")
            else:
                cells.append(f"{fmt(ours)} / {fmt(floor)} s = **{ours / floor:.2f}x**")
        rss = ", ".join("–" if op not in r or r[op][3] is None else str(r[op][3])
                        for r in per_run)
        floor_name = next(r[op][2] for r in per_run if op in r)
        out.append(f"| {op} | " + " | ".join(cells) + f" | {floor_name} | {rss} |")
    over = ", ".join(f"{s['drill']['overhead_s'] - checks(s):.2f} s (deleting the copy "
                     f"{s['drill']['timings'].get('teardown', 0):.2f} s)" for s in sizes)
    big = [s["large_table"] for s in sizes]
    n = next(k for k in big[0] if k.endswith("_sessions_s"))
    speed = "; ".join(f"{b['one_session_s']:.2f} s -> {b[n]:.2f} s = {b['speed_up']:.2f}x"
                      for b in big)
    out += ["", f"Drill overhead (wall time less restore, its two scans and the physical "
                f"checks): {over}. "
                f"Largest table `{big[0]['table']}` ({big[0]['mb']} MB, {big[0]['ranges']} TID "
                f"ranges) content-hashed with one session, then {n.split('_')[0]}: {speed}.", ""]
    return "\n".join(out)


def verdicts(runs: list[dict[str, Any]]) -> str:
    out = ["| target | " + " | ".join(r["label"] for r in runs) + " | holds |",
           "|---|" + "---|" * len(runs) + "---|"]

    def line(name: str, values: list[float], ok: bool, unit: str = "x") -> None:
        cells = " | ".join(f"{v:.2f}{unit}" for v in values)
        out.append(f"| {name} | {cells} | {'yes' if ok else '**no**'} |")

    ten = [r["sizes"]["10"] for r in runs if "10" in r["sizes"]]
    ones = [r["sizes"]["1"] for r in runs if "1" in r["sizes"]]
    if ten:
        fp = [s["fingerprint_library_s"] / s["fingerprint_floor_s"] for s in ten]
        line("fingerprint --content within 1.5x of the floor at 10 GB", fp,
             max(fp) <= TARGETS["fingerprint"])
        rs = [best(s["restore_rounds"], "spectral") / best(s["restore_rounds"], "floor")
              for s in ten]
        line("restore within 1.2x of cp -a + start + the same replay at 10 GB", rs,
             max(rs) <= TARGETS["restore"])
    checked = [(s, rd) for s in ones if (rd := reladiff_s(s)) is not None]
    if checked:
        cx = [rd / s["compare_library_s"] for s, rd in checked]
        line("the drill's compare of snapshot vs copy at least 10x faster than reladiff "
             "at 1 GB", cx, min(cx) >= TARGETS["compare_x"])
        cx = [rd / s["compare"]["seconds"] for s, rd in checked]
        line("the same as a `dr compare` process (start-up included)", cx,
             min(cx) >= TARGETS["compare_x"])
    elif ones:
        out.append("| compare at least 10x faster than reladiff at 1 GB | no reladiff run "
                   "compared every table whole: no baseline |" + " |" * (len(runs) - 1))
    rss = [float(r["peak_rss_any_spectral_mb"]) for r in runs if "peak_rss_any_spectral_mb" in r]
    if rss:
        line("peak RSS of any spectral process, every size, under 200 MB", rss,
             max(rss) < TARGETS["rss_mb"], " MB")
    over = [max(s["drill"]["overhead_s"] - checks(s) for s in r["sizes"].values()) for r in runs]
    line("drill overhead under 2 s at every size (largest)", over,
         max(over) < TARGETS["drill_overhead_s"], " s")
    rest = [max(s["drill"]["overhead_s"] - checks(s) - s["drill"]["timings"].get("teardown", 0)
                for s in r["sizes"].values()) for r in runs]
    line("the same, less deleting the restored copy (largest)", rest,
         max(rest) < TARGETS["drill_overhead_s"], " s")
    return "\n".join(out)


def chart(runs: list[dict[str, Any]], path: Path) -> None:
    """Small multiples, log-log: time against database size, spectral (solid) and its floor
    (dashed), the best of the runs at each size."""
    labels = [k for k in ("0.1", "1", "10") if all(k in r["sizes"] for r in runs)]
    series: dict[str, list[tuple[float, float, float | None]]] = {}
    for k in labels:
        per_run = [rows(r["sizes"][k], r["sizes"].get("1")) for r in runs]
        mb = runs[0]["sizes"][k]["database_mb"]
        for op in per_run[0]:
            if op in PROCESS_ROWS or "cold cache" in op:   # the chart: the warm library rows
                continue
            ours = min(r[op][0] for r in per_run)
            floors = [r[op][1] for r in per_run if r[op][1] is not None]
            series.setdefault(op, []).append((mb, ours, min(floors) if floors else None))
    w, h, cols = 330, 250, 3
    nrows = math.ceil(len(series) / cols)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * cols}" height="{h * nrows + 30}"'
           ' font-family="sans-serif" font-size="11">',
           f'<rect width="{w * cols}" height="{h * nrows + 30}" fill="white"/>',
           '<text x="10" y="18" font-size="13">Time against database size (log-log): spectral '
           '(solid) and its floor (dashed), best of the runs</text>']
    for i, (op, pts) in enumerate(series.items()):
        ox, oy = (i % cols) * w + 50, (i // cols) * h + 50
        pw, ph = w - 70, h - 80
        xs = [math.log10(p[0]) for p in pts]
        ys = [math.log10(v) for p in pts for v in (p[1], p[2]) if v]
        x0, x1 = min(xs) - 0.1, max(xs) + 0.1
        y0, y1 = math.floor(min(ys)), math.ceil(max(ys))
        y1 = y1 if y1 > y0 else y0 + 1

        def px(mb: float, x0: float = x0, x1: float = x1, ox: int = ox, pw: int = pw) -> float:
            return ox + (math.log10(mb) - x0) / (x1 - x0) * pw

        def py(s: float, y0: int = y0, y1: int = y1, oy: int = oy, ph: int = ph) -> float:
            return oy + ph - (math.log10(s) - y0) / (y1 - y0) * ph

        svg.append(f'<text x="{ox}" y="{oy - 8}" font-weight="bold">{op}</text>')
        svg.append(f'<rect x="{ox}" y="{oy}" width="{pw}" height="{ph}" fill="none" '
                   'stroke="#999"/>')
        for e in range(y0, y1 + 1):
            y = oy + ph - (e - y0) / (y1 - y0) * ph
            svg.append(f'<line x1="{ox}" x2="{ox + pw}" y1="{y:.1f}" y2="{y:.1f}" '
                       'stroke="#eee"/>')
            svg.append(f'<text x="{ox - 5}" y="{y + 4:.1f}" text-anchor="end">{10 ** e:g} s'
                       '</text>')
        for mb, _, _ in pts:
            svg.append(f'<text x="{px(mb):.1f}" y="{oy + ph + 14}" text-anchor="middle">'
                       f'{mb / 1000:g} GB</text>')
        for idx, style in ((1, 'stroke="#1f5fbf" stroke-width="2"'),
                           (2, 'stroke="#888" stroke-width="1.5" stroke-dasharray="5,4"')):
            line = [(px(p[0]), py(p[idx])) for p in pts if p[idx]]
            pts_s = " ".join(f"{x:.1f},{y:.1f}" for x, y in line)
            svg.append(f'<polyline points="{pts_s}" fill="none" {style}/>')
            for x, y in line:
                svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" '
                           f'fill="{"#1f5fbf" if idx == 1 else "#888"}"/>')
        floor_name = rows(runs[0]["sizes"][labels[-1]], runs[0]["sizes"].get("1"))[op][2]
        svg.append(f'<text x="{ox}" y="{oy + ph + 28}" fill="#666">floor: {floor_name}</text>')
    svg.append("</svg>")
    path.write_text("\n".join(svg) + "\n")


def report(paths: list[Path]) -> None:
    runs = [{**json.loads(p.read_text()), "label": "run " + p.stem.rsplit("-", 1)[-1]}
            for p in paths]
    for label in ("0.1", "1", "10"):
        if all(label in r["sizes"] for r in runs):
            print(table(label, runs))
    print(verdicts(runs))
    print()
    print("Wall time of each run: " + ", ".join(f"{r.get('wall_s', 0) / 60:.0f} min"
                                                 for r in runs))
    print()
    print(model(runs))
    chart(runs, CHART)
    print(f"\nchart: {CHART.name}")


def model(runs: list[dict[str, Any]]) -> str:
    """A nightly `dr drill functional --content` at 10 GB, 100 GB and 1 TB, from the rates
    measured at the largest size (best of the runs): snapshot scan of the source, restore,
    scan of the copy, deleting the copy, and the fixed rest. A scan is at the warm rate when
    the database fits in half the machine's memory, else at the cold rate. More cores speed
    up the warm (CPU-bound) scans in proportion, keeping the per-core efficiency measured on
    the large table (an upper bound); the copy and cold reads go at the storage's rate, as
    here or the stated multiple; deleting the copy and the fixed part do not change."""
    big = [r["sizes"]["10"] for r in runs if "10" in r["sizes"]]
    if not big:
        return ""
    mb = min(s["database_mb"] for s in big)
    warm = mb / min(s["fingerprint_library_s"] for s in big)
    cold_runs = [s for s in big if "fingerprint_cold_s" in s]
    cold = mb / min(s["fingerprint_cold_s"] for s in cold_runs) if cold_runs else warm
    restore = mb / min(best(s["restore_rounds"], "spectral") for s in big)
    delete = mb / min(s["drill"]["timings"].get("teardown", 1e-9) for s in big)
    fixed = min(s["drill"]["overhead_s"] - checks(s) - s["drill"]["timings"].get("teardown", 0)
                for s in big)
    checked = [s for s in big if checks(s) > 0]
    check_rate = mb / min(checks(s) for s in checked) if checked else None
    eff = min(s["large_table"]["speed_up"] for s in big) / runs[0]["workers"]
    out = [f"Rates at {mb / 1000:.1f} GB (MB of database per second): scan warm {warm:.0f}, "
           f"scan cold {cold:.0f}, restore of latest cold {restore:.0f}, deleting the copy "
           f"{delete:.0f}; physical checks of the copy "
           f"{'-' if check_rate is None else f'{check_rate:.0f}'}; fixed part {fixed:.1f} s; "
           f"parallel efficiency per core {eff:.2f}.",
           "", "| database | machine | snapshot scan | restore | scan of the copy | physical "
           "checks | delete + fixed | nightly drill |", "|---|---|---|---|---|---|---|---|"]
    machines = (("2 cores, 24 GiB (this one)", runs[0]["workers"], 24, 1.0),
                ("16 cores, 128 GiB, same storage", 16, 128, 1.0),
                ("16 cores, 128 GiB, storage 4x faster", 16, 128, 4.0))
    for gb in (10, 100, 1000):
        for name, cores, ram_gb, disk in machines:
            size = gb * 1000
            fits = gb <= ram_gb / 2
            scan = size / (warm * cores / runs[0]["workers"]) if fits else size / (cold * disk)
            r = size / (restore * disk)
            rest = fixed + size / delete
            physical = size / (check_rate * disk) if check_rate else 0.0
            total = 2 * scan + r + physical + rest
            out.append(f"| {gb:g} GB | {name} | {_dur(scan)}{'' if fits else ' (cold)'} | "
                       f"{_dur(r)} | {_dur(scan)} | {_dur(physical)} | {_dur(rest)} | "
                       f"**{_dur(total)}** |")
    return "\n".join(out)


def _dur(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
