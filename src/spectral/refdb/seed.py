"""The cold-start seed (the runbook's tools/dev/cold_start_seed.py): the tax-prep world generated
deterministically, same scale -> same bytes, loaded with COPY.

Rows are assembled by C-level iterator pipelines (map/zip/cycle over pre-rendered pools), so the
generator keeps up with the server's COPY on two cores."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from queue import Empty, Queue
from typing import Any

import psycopg

from spectral.pg.conn import connect
from spectral.refdb.rows import SEQUENCES as SEQUENCES
from spectral.refdb.rows import TABLES as TABLES
from spectral.refdb.rows import Counts as Counts
from spectral.refdb.rows import TableSeed

CHUNK_ROWS = 20_000
Progress = Callable[[str, int, int, int], None]   # table, rows just loaded, table rows, bytes


@dataclass(frozen=True)
class SeedResult:
    scale: int
    rows: dict[str, int]
    bytes_sent: int
    seconds: float
    phases: dict[str, float]


@dataclass(frozen=True)
class Part:
    spec: TableSeed
    a: int
    b: int


def plan_parts(counts: Counts, workers: int) -> list[Part]:
    """Split every table into id ranges so that the workers finish together; largest first."""
    parts: list[Part] = []
    for spec in TABLES:
        total = spec.count(counts)
        step = max(CHUNK_ROWS * 5, -(-total // (workers * 2)))
        parts += [Part(spec, a, min(a + step, total + 1)) for a in range(1, total + 1, step)]
    return sorted(parts, key=lambda p: p.b - p.a, reverse=True)


class SeedInterrupted(Exception):
    """Another worker failed or the run was interrupted: stop copying and roll back."""


def copy_part(conn: psycopg.Connection[Any], part: Part, counts: Counts,
              progress: Progress | None = None, stop: threading.Event | None = None) -> int:
    sent = 0
    cols = ", ".join(part.spec.columns)
    total = part.spec.count(counts)
    with conn.cursor() as cur, cur.copy(f"COPY {part.spec.table} ({cols}) FROM STDIN") as copy:
        for a in range(part.a, part.b, CHUNK_ROWS):
            if stop is not None and stop.is_set():
                raise SeedInterrupted(part.spec.table)
            b = min(a + CHUNK_ROWS, part.b)
            data = part.spec.chunk(counts, a, b).encode()
            copy.write(data)
            sent += len(data)
            if progress:
                progress(part.spec.table, b - a, total, len(data))
    return sent


def _worker(conninfo: str, queue: Queue[Part], counts: Counts, barrier: threading.Barrier,
            failed: threading.Event, progress: Progress | None) -> int:
    sent = 0
    with connect(conninfo, autocommit=False) as conn:
        try:
            # Consistent data loaded parent-first: skip per-row FK triggers, as pg_restore does.
            conn.execute("set session_replication_role = replica")
            conn.execute("set synchronous_commit = off")
            while not failed.is_set():
                try:
                    part = queue.get_nowait()
                except Empty:
                    break
                sent += copy_part(conn, part, counts, progress, failed)
        except BaseException:
            failed.set()
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.abort()
            raise
        # commit only when every worker has loaded its share
        try:
            barrier.wait(timeout=3600)
        except threading.BrokenBarrierError:
            conn.rollback()
            return sent
        if failed.is_set():
            conn.rollback()
        else:
            conn.commit()
    return sent


_PLAIN_INDEXES = """
select pg_get_indexdef(i.indexrelid), i.indexrelid::regclass::text
from pg_index i
join pg_class t on t.oid = i.indrelid
join pg_namespace n on n.oid = t.relnamespace
where n.nspname = any(%s) and t.relkind in ('r', 'p')
  and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid)
  and not exists (select 1 from pg_inherits h where h.inhrelid = i.indexrelid)
order by 2
"""


def _drop_plain_indexes(conn: psycopg.Connection[Any]) -> list[str]:
    """Indexes that back no constraint are dropped before the load and rebuilt from their exact
    definitions after it (a sort-based build beats row-by-row maintenance, as in pg_restore).
    Constraint indexes stay: they also guard the data being loaded."""
    schemas = sorted({spec.table.split(".")[0] for spec in TABLES})
    found = conn.execute(_PLAIN_INDEXES, (schemas,)).fetchall()
    with conn.transaction():
        for _ddl, name in found:
            conn.execute(f"drop index {name}")
    return [ddl for ddl, _name in found]


def seed(conninfo: str, scale: int, progress: Progress | None = None,
         workers: int = 2) -> SeedResult:
    """Load the world into an empty, migrated database with `workers` parallel COPY streams."""
    if scale < 1:
        raise ValueError("scale must be at least 1")
    counts = Counts(scale)
    started = time.monotonic()
    queue: Queue[Part] = Queue()
    for part in plan_parts(counts, workers):
        queue.put(part)
    barrier = threading.Barrier(workers)
    failed = threading.Event()
    lock = threading.Lock()

    def safe_progress(table: str, rows: int, total: int, nbytes: int) -> None:
        if progress:
            with lock:
                progress(table, rows, total, nbytes)

    phases: dict[str, float] = {}
    with connect(conninfo) as conn:
        deferred = _drop_plain_indexes(conn)
    try:
        with ThreadPoolExecutor(workers) as pool:
            futures = [pool.submit(_worker, conninfo, queue, counts, barrier, failed,
                                   safe_progress) for _ in range(workers)]
            try:
                wait(futures)
            except BaseException:   # Ctrl-C or SIGTERM: every worker stops and rolls back
                failed.set()
                raise
            errors = [e for f in futures if (e := f.exception()) is not None]
            if errors:   # report the cause, not the workers that stopped because of it
                raise next((e for e in errors if not isinstance(e, SeedInterrupted)), errors[0])
            sent = sum(f.result() for f in futures)
        phases["copy"] = time.monotonic() - started
    finally:
        mark = time.monotonic()
        _build_indexes(conninfo, deferred, workers)
        phases["indexes"] = time.monotonic() - mark
    mark = time.monotonic()
    with connect(conninfo) as conn:
        for table, column in SEQUENCES:
            conn.execute(f"select setval(pg_get_serial_sequence(%s, %s), "
                         f"(select max({column}) from {table}))", (table, column))
        conn.execute("refresh materialized view worlds.yearly_totals")
    phases["finish"] = time.monotonic() - mark
    rows = {spec.table: spec.count(counts) for spec in TABLES}
    return SeedResult(scale, rows, sent, time.monotonic() - started, phases)


def _build_indexes(conninfo: str, ddls: list[str], workers: int) -> None:
    """Rebuild the deferred indexes, `workers` at a time, each with room to sort in memory."""
    pending: Queue[str] = Queue()
    for ddl in ddls:
        pending.put(ddl)

    def build() -> None:
        with connect(conninfo) as conn:
            conn.execute("set maintenance_work_mem = '256MB'")
            while True:
                try:
                    ddl = pending.get_nowait()
                except Empty:
                    return
                conn.execute(ddl.encode())

    with ThreadPoolExecutor(workers) as pool:
        for future in [pool.submit(build) for _ in range(workers)]:
            future.result()
