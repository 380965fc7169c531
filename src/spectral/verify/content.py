"""Exact row counts and order-independent content checksums, computed inside PostgreSQL.

All workers import one exported snapshot (as pg_dump -j does), so every table is read as of the
same instant, and large tables are split into TID ranges so that the workers share them. Rows
never travel to Python: each range returns a count, a sum of 64-bit row hashes and the newest
value of the table's last-change column."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from spectral.pg.conn import Sessions
from spectral.verify import locks
from spectral.verify.content_sql import COLUMN_HASHES_SQL as COLUMN_HASHES_SQL  # by_query.py
from spectral.verify.content_sql import TABLES_SQL as TABLES_SQL  # sends them too
from spectral.verify.kinds import Method as Method  # where they were defined: kept importable
from spectral.verify.kinds import TableStatus as TableStatus

CHUNK_BLOCKS = 4096           # 32 MB of heap per range: small enough to balance the workers
# progress(stage, done, total) in heap blocks: stage "scan" for the whole scan, "scan <table>"
# for each table split into ranges (the ones a terminal is watched for)
ScanProgress = Callable[[str, int, int], None]
MASK64 = (1 << 64) - 1


class ScanStopped(Exception):
    """The scan was told to stop: its facts would be partial, so there are none."""


@dataclass
class TablePlan:
    schema: str
    name: str
    blocks: int
    method: Method
    last_change: str | None
    status: TableStatus = TableStatus.OK
    reason: str | None = None
    # columns hashed through their text form because their hash depends on OIDs (enums, reg*):
    # None means the whole row is hashed as it is
    text_columns: tuple[str, ...] | None = None
    columns: tuple[str, ...] = ()
    # (column, hash function, argument type) per column for COLUMN_HASH; None function: text
    column_hashes: tuple[tuple[str, str | None, str | None], ...] = ()
    locator: str | None = None    # tablespace/database/relfilenode: finds a later DROP in WAL

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass
class TableFacts:
    rows: int | None = None
    content: str | None = None
    method: str = Method.COUNT.value
    last_change: str | None = None
    status: TableStatus = TableStatus.OK
    reason: str | None = None
    locator: str | None = None
    _sum: int = field(default=0, repr=False)
    _max: Any = field(default=None, repr=False)


Range = tuple[str, int, int, Any, str | None]   # table, rows, hash sum, newest change, error


def _change_column(stamped: list[str]) -> str | None:
    """Of the columns stamped with the time of the write, the one that moves on updates too
    (by its name: updated_at, modified, ...), else the first."""
    for hint in ("updat", "modif", "chang", "occur", "upload"):
        for col in stamped:
            if hint in col:
                return col
    return stamped[0] if stamped else None


def plan_tables(conn: psycopg.Connection[Any], schemas: list[str], content: bool,
                last_change: dict[str, str]) -> list[TablePlan]:
    """Which tables to read, how big they are, and how each can be hashed; run inside the
    snapshot transaction."""
    hashes = list(conn.execute(COLUMN_HASHES_SQL, (schemas,))) if content else []
    plans = plans_from_rows(list(conn.execute(TABLES_SQL, (schemas,))), hashes, last_change)
    if content:
        _choose_methods(conn, [p for p in plans if p.status is TableStatus.OK])
    return plans


PROBES_PER_STATEMENT = 200   # well under the 1664 columns a select list may have


def _choose_methods(conn: psycopg.Connection[Any], plans: list[TablePlan]) -> None:
    """Each table's hash method: the per-column hash tried on one row of every table in one
    statement (one round trip, not three a table); where that fails, table by table."""
    for i in range(0, len(plans), PROBES_PER_STATEMENT):
        group = plans[i:i + PROBES_PER_STATEMENT]
        probe = sql.SQL("select ") + sql.SQL(", ").join(_probe(p) for p in group)
        try:
            with conn.transaction():
                conn.execute(probe)
        except psycopg.errors.Error:
            for plan in group:
                plan.method = _hash_method(conn, plan)
            continue
        for plan in group:
            plan.method = Method.COLUMN_HASH


def _probe(plan: TablePlan) -> sql.Composed:
    return sql.SQL("(select {} from {}.{} t limit 1)").format(
        row_hash(plan), sql.Identifier(plan.schema), sql.Identifier(plan.name))


def plans_from_rows(tables: list[Any], hashes: list[Any],
                    last_change: dict[str, str]) -> list[TablePlan]:
    """Plans from the rows of TABLES_SQL and COLUMN_HASHES_SQL (counting only; the caller
    chooses each readable table's hash method when content is asked for)."""
    by_table: dict[str, list[tuple[str, str | None, str | None]]] = {}
    for schema, name, col, fn, argtype in hashes:
        by_table.setdefault(f"{schema}.{name}", []).append((col, fn, argtype))
    plans = []
    for schema, name, blocks, readable, columns, text_cols, locator, stamped in tables:
        qualified = f"{schema}.{name}"
        col = last_change.get(qualified) or _change_column(stamped or [])
        plan = TablePlan(schema, name, int(blocks), Method.COUNT, col,
                         text_columns=tuple(text_cols) if text_cols else None,
                         columns=tuple(columns or ()),
                         column_hashes=tuple(by_table.get(qualified, ())), locator=locator)
        if not readable:
            plan.status = TableStatus.COULD_NOT_VERIFY
            plan.reason = f"permission denied for table {qualified}"
        plans.append(plan)
    return plans


def _hash_method(conn: psycopg.Connection[Any], plan: TablePlan) -> Method:
    """Try the per-column hash on one row; a type it cannot handle falls back to text."""
    probe = sql.SQL("select ") + _probe(plan)
    try:
        with conn.transaction():
            conn.execute(probe)
        return Method.COLUMN_HASH
    except psycopg.errors.Error:
        return Method.TEXT_HASH


NULL_MARK = 0x5BD1E9955BD1E995   # stands for NULL in column i as NULL_MARK + i
SEED = 0x5EED


def row_hash(plan: TablePlan) -> sql.Composable:
    """xor of every column's extended hash, each seeded by its position so that values moved
    between columns change the result. Columns whose hash depends on OIDs (enums, reg*) or
    whose type has no hash function are hashed through their text form."""
    parts = []
    text_cols = set(plan.text_columns or ())
    for i, (col, fn, argtype) in enumerate(plan.column_hashes):
        ident = sql.SQL("t.{}").format(sql.Identifier(col))
        if fn is None or col in text_cols:
            call = sql.SQL("hashtextextended({}::text, {})").format(ident, sql.Literal(SEED + i))
        elif argtype is None or argtype.rpartition(".")[2].startswith("any"):
            call = sql.SQL("{}({}, {})").format(sql.SQL(fn), ident, sql.Literal(SEED + i))
        else:
            call = sql.SQL("{}({}::{}, {})").format(sql.SQL(fn), ident, sql.SQL(argtype),
                                                    sql.Literal(SEED + i))
        parts.append(sql.SQL("coalesce({}, {}::bigint)").format(call,
                                                               sql.Literal(NULL_MARK + i)))
    if not parts:
        return sql.SQL("0::bigint")
    return sql.SQL("(") + sql.SQL(" # ").join(parts) + sql.SQL(")")


def range_query(plan: TablePlan, lo: int | None, hi: int | None,
                method: Method | None = None) -> sql.Composed:
    """The query for one TID range of a table (pure: unit-tested by comparing text)."""
    method = method or plan.method
    table = sql.SQL("{}.{}").format(sql.Identifier(plan.schema), sql.Identifier(plan.name))
    row: sql.Composable = sql.SQL("t.*")
    if plan.text_columns:
        row = sql.SQL("row({})").format(sql.SQL(", ").join(
            sql.SQL("t.{}::text" if c in plan.text_columns else "t.{}").format(sql.Identifier(c))
            for c in plan.columns))
    agg: sql.Composable = {
        Method.COUNT: sql.SQL("count(*), 0"),
        Method.COLUMN_HASH: sql.SQL("count(*), coalesce(sum({}), 0)").format(row_hash(plan)),
        Method.RECORD_HASH: sql.SQL("count(*), coalesce(sum(hash_record_extended({}, 0)), 0)"
                                    ).format(row),
        Method.TEXT_HASH: sql.SQL("count(*), coalesce(sum(hashtextextended(t::text, 0)), 0)"),
        Method.FLOOR: sql.SQL("count(*), 0"),
    }[method]
    last: sql.Composable = sql.SQL("null")
    if plan.last_change:
        last = sql.SQL("max(t.{})").format(sql.Identifier(plan.last_change))
    conds: list[sql.Composable] = []
    if method is Method.FLOOR:
        conds.append(sql.SQL("t is not null"))
    if lo is not None:
        conds.append(sql.SQL("t.ctid >= {}::tid").format(sql.Literal(f"({lo},0)")))
    if hi is not None:
        conds.append(sql.SQL("t.ctid < {}::tid").format(sql.Literal(f"({hi},0)")))
    where: sql.Composable = (sql.SQL(" where ") + sql.SQL(" and ").join(conds) if conds
                             else sql.SQL(""))
    return sql.SQL("select {}, {} from {} t{}").format(agg, last, table, where)


def split(plan: TablePlan, chunk_blocks: int | None = None
          ) -> list[tuple[int | None, int | None]]:
    """TID ranges covering the whole table; the last one is open-ended, so rows in blocks added
    after planning (invisible to the snapshot anyway) can never be missed."""
    chunk_blocks = chunk_blocks or CHUNK_BLOCKS
    if plan.blocks <= chunk_blocks:
        return [(None, None)]
    starts = list(range(0, plan.blocks, chunk_blocks))
    return [(s, s + chunk_blocks if i + 1 < len(starts) else None) for i, s in enumerate(starts)]


def scan(conninfo: str, snapshot: str | None, plans: list[TablePlan], *,
         workers: int | None = None, method: Method | None = None,
         progress: ScanProgress | None = None,
         stop: threading.Event | None = None, sessions: Sessions | None = None,
         lock_timeout: float = locks.LOCK_TIMEOUT,
         ready: threading.Event | None = None,
         rate: float | None = None) -> dict[str, TableFacts]:
    """Read every planned table in parallel sessions sharing `snapshot` (verify/scan.py),
    at most `rate` MB/s when given."""
    from spectral.verify import scan as scanning

    return scanning.scan(conninfo, snapshot, plans, workers=workers, method=method,
                         progress=progress, stop=stop, sessions=sessions,
                         lock_timeout=lock_timeout, ready=ready, rate=rate)


def fold(plans: list[TablePlan], ranges: list[Range],
         method: Method | None = None) -> dict[str, TableFacts]:
    """Each table's facts from the results of its TID ranges."""
    facts = {p.qualified: TableFacts(method=(method or p.method).value, status=p.status,
                                     reason=p.reason, locator=p.locator) for p in plans}
    for name, count, total, newest, error in ranges:
        f = facts[name]
        if error:
            f.status, f.reason = TableStatus.COULD_NOT_VERIFY, error
            continue
        f.rows = (f.rows or 0) + count
        f._sum += total
        if newest is not None and (f._max is None or newest > f._max):
            f._max = newest
    for plan in plans:
        f = facts[plan.qualified]
        if f.status is not TableStatus.OK:
            f.rows = f.content = None
            continue
        if f.rows is None:
            f.rows = 0
        if f.method in (Method.COLUMN_HASH, Method.RECORD_HASH, Method.TEXT_HASH):
            f.content = f"{f._sum & MASK64:016x}"
        f.last_change = f._max.isoformat() if hasattr(f._max, "isoformat") else (
            None if f._max is None else str(f._max))
    return facts
