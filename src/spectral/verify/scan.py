"""The parallel readers of a content scan (verify/content.py plans the tables and folds the
results): `workers` sessions import one exported snapshot, each locks every table before it
reads any (verify/locks.py), then they share the tables' TID ranges through one queue."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from queue import Empty, Queue
from typing import Any

import psycopg
from psycopg import sql

from spectral.pg.conn import Sessions
from spectral.verify import content, locks
from spectral.verify.content import (
    Method,
    Range,
    ScanProgress,
    ScanStopped,
    TableFacts,
    TablePlan,
    TableStatus,
)
from spectral.verify.replica import RecoveryConflict, is_recovery_conflict
from spectral.verify.throttle import ReadRate, range_bytes, read_rate

Item = tuple[TablePlan, int | None, int | None]


def _session_settings(conn: psycopg.Connection[Any]) -> None:
    # text hashing must not depend on the session: fixed time zone, date style, float digits
    conn.execute("set timezone = 'UTC'")
    conn.execute("set datestyle = 'ISO, YMD'")
    conn.execute("set extra_float_digits = 1")
    conn.execute("set intervalstyle = 'postgres'")
    conn.execute("set max_parallel_workers_per_gather = 0")   # our workers are the parallelism
    # Never count through row-level security: with row_security off, a query that policies would
    # filter fails instead of silently returning fewer rows; the table is then could-not-verify.
    conn.execute("set row_security = off")


def _queue(plans: list[TablePlan]) -> Queue[Item]:
    """Every readable table's TID ranges, the largest tables first."""
    items: Queue[Item] = Queue()
    for plan in sorted(plans, key=lambda p: -p.blocks):
        if plan.status is TableStatus.OK:
            for lo, hi in content.split(plan):
                items.put((plan, lo, hi))
    return items


@dataclass
class _Scan:
    """One scan's shared state: what is left to read, what was read, and how to stop."""

    conninfo: str
    snapshot: str | None
    plans: list[TablePlan]
    method: Method | None
    lock_timeout: float
    stop: threading.Event
    sessions: Sessions
    tally: _Tally
    arrived: _Countdown
    items: Queue[Item]
    rate: ReadRate | None = None   # the source's read budget (None: unlimited)
    results: Queue[Range] = field(default_factory=Queue)
    first: list[BaseException] = field(default_factory=list)  # the failure, not its echoes
    guard: threading.Lock = field(default_factory=threading.Lock)

    def work(self) -> None:
        try:
            self.read_ranges()
        except BaseException as exc:
            with self.guard:
                if not self.stop.is_set():
                    self.first.append(exc)
                self.stop.set()   # one worker failing stops the others, at once
            self.sessions.cancel()
            raise

    def read_ranges(self) -> None:
        tables = [(p.schema, p.name) for p in self.plans if p.status is TableStatus.OK]
        with self.sessions.open(self.conninfo, autocommit=False) as conn:
            _session_settings(conn)
            locks.set_timeout(conn, self.lock_timeout)
            conn.execute("set transaction isolation level repeatable read, read only")
            if self.snapshot:
                conn.execute(sql.SQL("set transaction snapshot {}")
                             .format(sql.Literal(self.snapshot)))
            locks.lock_all(conn, tables, self.lock_timeout)
            self.arrived.one()
            while not self.stop.is_set():
                try:
                    plan, lo, hi = self.items.get_nowait()
                except Empty:
                    break
                if self.rate is not None:   # sleeps between ranges, holding nothing more
                    self.rate.take(range_bytes(plan.blocks, lo, hi))
                    if self.stop.is_set():
                        break
                self.results.put(_read_range(conn, plan, lo, hi, self.method,
                                             self.lock_timeout))
                self.tally.done(plan, lo, hi)
            conn.rollback()


def scan(conninfo: str, snapshot: str | None, plans: list[TablePlan], *,
         workers: int | None = None, method: Method | None = None,
         progress: ScanProgress | None = None,
         stop: threading.Event | None = None, sessions: Sessions | None = None,
         lock_timeout: float = locks.LOCK_TIMEOUT,
         ready: threading.Event | None = None,
         rate: float | None = None) -> dict[str, TableFacts]:
    """Read every planned table in `workers` parallel sessions sharing `snapshot`. A large
    table's TID ranges are spread over all the sessions, so one table alone uses every core.
    Each session locks every table before it reads any (verify/locks.py), then needs no other
    lock; `ready` is set once they all hold the snapshot and the locks. When `stop` is set (or
    this thread is interrupted) the sessions' queries are cancelled and nothing is returned.
    `rate`: MB/s all the sessions may read together (verify/throttle.py; None or 0: no limit)."""
    items = _queue(plans)
    n = max(1, min(workers or os.cpu_count() or 2, items.qsize() or 1))
    ready = ready or threading.Event()
    run = _Scan(conninfo, snapshot, plans, method, lock_timeout, stop or threading.Event(),
                sessions or Sessions(), _Tally(plans, progress), _Countdown(n, ready), items)
    run.rate = read_rate(rate, run.stop)
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(run.work) for _ in range(n)]
        try:
            for future in futures:
                future.result()
        except BaseException as exc:
            run.stop.set()
            run.sessions.cancel()
            _drain(futures, run.sessions)
            if run.first and run.first[0] is not exc and \
                    not isinstance(exc, KeyboardInterrupt):
                raise run.first[0] from None   # the others' "cancelled" is only its echo
            raise
        finally:
            ready.set()
    if run.stop.is_set():
        raise ScanStopped("the content scan was stopped before every table was read")
    run.tally.finish()
    return content.fold(plans, [run.results.get() for _ in range(run.results.qsize())],
                        method)


def _read_range(conn: psycopg.Connection[Any], plan: TablePlan, lo: int | None,
                hi: int | None, method: Method | None, lock_timeout: float) -> Range:
    """One range's count, hash sum and newest change, or the reason it could not be read. A
    lock wait (an index a DDL wants) is a conflict for the whole scan, not this table's fact."""
    try:
        with conn.transaction():
            row = conn.execute(content.range_query(plan, lo, hi, method)).fetchone()
        assert row is not None
        return plan.qualified, int(row[0]), int(row[1]), row[2], None
    except psycopg.errors.LockNotAvailable:
        raise locks.blocker(conn, [plan.qualified], lock_timeout) from None
    except psycopg.Error as exc:
        reason = (exc.diag.message_primary or str(exc)).strip()
        if is_recovery_conflict(exc):   # the replica's doing, not the table's: taken again
            raise RecoveryConflict(reason) from None
        return plan.qualified, 0, 0, None, reason


class _Countdown:
    """Sets `event` when `count` workers have arrived."""

    def __init__(self, count: int, event: threading.Event) -> None:
        self.count, self.event, self.lock = count, event, threading.Lock()

    def one(self) -> None:
        with self.lock:
            self.count -= 1
            if self.count <= 0:
                self.event.set()


def _drain(futures: list[Future[None]], sessions: Sessions, within: float = 15) -> None:
    """Wait for stopped workers, cancelling again what any of them started meanwhile (a cancel
    reaches only the statement running when it arrives)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not wait_futures(futures, timeout=0.25).not_done:
            return
        sessions.cancel()


class _Tally:
    """Blocks read so far, per table split into ranges and in all, told to `progress` from the
    workers' threads one at a time."""

    def __init__(self, plans: list[TablePlan], progress: ScanProgress | None) -> None:
        self.progress, self.lock = progress, threading.Lock()
        ok = [p for p in plans if p.status is TableStatus.OK]
        self.total = sum(max(p.blocks, 1) for p in ok)
        self.read = 0
        self.per_table = {p.qualified: 0 for p in ok if len(content.split(p)) > 1}
        if progress:
            progress("scan", 0, self.total)
            for p in ok:
                if p.qualified in self.per_table:
                    progress(f"scan {p.qualified}", 0, p.blocks)

    def done(self, plan: TablePlan, lo: int | None, hi: int | None) -> None:
        if self.progress is None:
            return
        blocks = max((hi if hi is not None else max(plan.blocks, 1)) - (lo or 0), 0)
        with self.lock:
            self.read = min(self.read + blocks, self.total)
            if plan.qualified in self.per_table:
                self.per_table[plan.qualified] += blocks
                self.progress(f"scan {plan.qualified}",
                              min(self.per_table[plan.qualified], plan.blocks), plan.blocks)
            self.progress("scan", self.read, self.total)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress("scan", self.total, self.total)
