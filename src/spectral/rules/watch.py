"""`spectral db watch-rules`: listen for the hook's notifications, coalesce bursts, re-export the
partners that changed, optionally commit the files to git. After any lost connection (the
database restarted) it reconnects with backoff and re-exports everything, because notifications
sent while it was away are gone: no mutation is ever lost."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from spectral.pg.conn import connect
from spectral.rules.export import PartnerExport, export
from spectral.rules.hook import CHANNEL
from spectral.runner import run

Report = Callable[[str], None]


@dataclass
class WatchStats:
    exports: int = 0
    reconnects: int = 0
    commits: int = 0
    partners: set[str] = field(default_factory=set)


def _export(conninfo: str, partners: list[str] | None, out: Path, only: str | None,
            commit: bool, report: Report, stats: WatchStats) -> None:
    if only is not None:
        partners = [only] if partners is None or only in partners or "*" in partners else []
    elif partners is not None and "*" in partners:
        partners = None
    if partners == []:
        return
    with connect(conninfo) as conn:
        results = export(conn, partners, out)
    stats.exports += 1
    changed = [r for r in results if r.written or r.removed]
    for r in results:
        stats.partners.add(r.partner)
    if changed:
        report("re-exported " + ", ".join(f"{r.partner} ({len(r.written)} written, "
                                          f"{len(r.removed)} removed)" for r in changed))
        if commit:
            _commit(out, changed, report)
            stats.commits += 1


def _commit(out: Path, changed: list[PartnerExport], report: Report) -> None:
    paths = [str(out / r.partner) for r in changed]
    run(["git", "add", "--all", "--", *paths], timeout=120, cwd=out)
    staged = run(["git", "diff", "--cached", "--quiet"], timeout=60, cwd=out, check=False)
    if staged.returncode == 0:
        return
    summary = "; ".join(f"{r.partner}: {len(r.written)} file(s) written, {len(r.removed)} "
                        f"removed" for r in changed)
    run(["git", "commit", "-q", "-m", f"rules: re-export {', '.join(r.partner for r in changed)}",
         "-m", summary], timeout=120, cwd=out)
    report(f"committed: {summary}")


def watch(conninfo: str, out: Path, *, only: str | None = None, commit: bool = False,
          debounce: float = 0.5, max_delay: float = 5.0, report: Report = lambda _m: None,
          should_stop: Callable[[], bool] = lambda: False) -> WatchStats:
    stats = WatchStats()
    backoff = 0.5
    first = True
    while not should_stop():
        try:
            conn: psycopg.Connection[Any] = connect(conninfo, timeout=5)
        except Exception as exc:   # the database is down: try again
            report(f"cannot connect ({exc}); retrying in {backoff:.1f}s")
            time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
            continue
        backoff = 0.5
        try:
            with conn:
                conn.execute(f"listen {CHANNEL}")
                if not first:
                    stats.reconnects += 1
                    report("reconnected; re-exporting everything")
                # listening first, then exporting: a change made in between is not missed
                _export(conninfo, None, out, only, commit, report, stats)
                first = False
                _loop(conn, conninfo, out, only, commit, debounce, max_delay, report, stats,
                      should_stop)
        except psycopg.OperationalError as exc:
            report(f"connection lost ({' '.join(str(exc).split())[:120]}); reconnecting")
    return stats


def _loop(conn: psycopg.Connection[Any], conninfo: str, out: Path, only: str | None,
          commit: bool, debounce: float, max_delay: float, report: Report, stats: WatchStats,
          should_stop: Callable[[], bool]) -> None:
    pending: set[str] = set()
    first_at = last_at = 0.0
    while not should_stop():
        for note in conn.notifies(timeout=0.2, stop_after=1000):
            if not pending:
                first_at = time.monotonic()
            pending.add(note.payload)
            last_at = time.monotonic()
        now = time.monotonic()
        if pending and (now - last_at >= debounce or now - first_at >= max_delay):
            batch, pending = sorted(pending), set()
            _export(conninfo, batch, out, only, commit, report, stats)


def git_available(path: Path) -> bool:
    res = subprocess.run(["git", "-C", str(path), "rev-parse", "--is-inside-work-tree"],
                         capture_output=True, text=True, check=False, timeout=30)
    return res.returncode == 0
