"""`spectral dr sample`: the environment's change counters, once a day, in the evidence store.

Each sample holds per-table inserts, updates and deletes (pg_stat_user_tables), live rows, the
database size and the WAL position. Daily churn is the difference between consecutive samples.
A statistics reset or a server restart that lost the counters is detected (the counters went
down, or stats_reset / the start time changed): that interval counts the change since the reset,
never a negative or invented figure. A day with no sample is a gap, not zero."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import psycopg

from spectral.durable import append_durable

SAMPLE_SQL = """
select coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint,
       coalesce(sum(n_live_tup), 0)::bigint,
       (select stats_reset from pg_stat_database where datname = current_database()),
       pg_postmaster_start_time(), pg_database_size(current_database()),
       pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint
from pg_stat_user_tables where schemaname = any(%s)
"""


@dataclass(frozen=True)
class Sample:
    taken_at: datetime
    changed_total: int        # cumulative inserts + updates + deletes
    live_rows: int
    stats_reset: str | None
    started_at: str
    db_bytes: int
    wal_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {"version": 1, "taken_at": self.taken_at.isoformat(), **{
            k: v for k, v in self.__dict__.items() if k != "taken_at"}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Sample:
        return cls(datetime.fromisoformat(d["taken_at"]), int(d["changed_total"]),
                   int(d["live_rows"]), d.get("stats_reset"), d["started_at"],
                   int(d["db_bytes"]), int(d["wal_bytes"]))


def samples_file(state_dir: Path) -> Path:
    return state_dir / "evidence" / "samples.jsonl"


def take_sample(conn: psycopg.Connection[Any], schemas: list[str],
                now: datetime | None = None) -> Sample:
    row = conn.execute(SAMPLE_SQL, (schemas,)).fetchone()
    assert row is not None
    changed, live, reset, started, size, wal = row
    return Sample(now or datetime.now(UTC), int(changed), int(live),
                  reset.isoformat() if reset else None, started.isoformat(), int(size), int(wal))


def record(state_dir: Path, sample: Sample) -> None:
    append_durable(samples_file(state_dir), json.dumps(sample.to_json(), sort_keys=True) + "\n")


def read(state_dir: Path) -> list[Sample]:
    path = samples_file(state_dir)
    if not path.exists():
        return []
    out = [Sample.from_json(json.loads(ln)) for ln in path.read_text().splitlines() if ln.strip()]
    return sorted(out, key=lambda s: s.taken_at)


@dataclass(frozen=True)
class Day:
    day: date
    churn: float | None          # changed rows / live rows; None for a gap
    changed: int | None
    live: int | None
    wal_bytes: int | None
    note: str = ""


def daily(samples: list[Sample]) -> list[Day]:
    """One entry per calendar day between the first and the last sample; days with no
    interval ending on them are gaps."""
    if len(samples) < 2:
        return []
    by_day: dict[date, Day] = {}
    for prev, cur in pairwise(samples):
        span = cur.taken_at - prev.taken_at
        if span > timedelta(hours=36):
            continue   # a missed sample: the days in between are gaps, not zero
        reset = (cur.stats_reset != prev.stats_reset or cur.changed_total < prev.changed_total)
        restarted = cur.started_at != prev.started_at
        changed = cur.changed_total if reset else cur.changed_total - prev.changed_total
        note = "statistics reset: counted from the reset" if reset else (
            "server restarted" if restarted else "")
        live = max(cur.live_rows, 1)
        by_day[cur.taken_at.date()] = Day(cur.taken_at.date(), changed / live, changed,
                                          cur.live_rows, cur.wal_bytes - prev.wal_bytes, note)
    first, last = samples[1].taken_at.date(), samples[-1].taken_at.date()
    out = []
    d = first
    while d <= last:
        out.append(by_day.get(d, Day(d, None, None, None, None, "gap: no sample")))
        d += timedelta(days=1)
    return out


def longest_streak(days: list[Day], threshold: float) -> tuple[int, list[Day]]:
    """The longest run of consecutive days above `threshold` (a gap breaks the run)."""
    best: list[Day] = []
    run: list[Day] = []
    for d in days:
        if d.churn is not None and d.churn > threshold:
            run.append(d)
            if len(run) > len(best):
                best = list(run)
        else:
            run = []
    return len(best), best
