"""How a snapshot of a live source keeps out of production's way.

PostgreSQL grants a lock request only when it conflicts neither with the locks held nor with
the requests already queued: a new ACCESS SHARE waits behind a queued ACCESS EXCLUSIVE (an
ALTER TABLE, a TRUNCATE, a migration) even when the holder ahead of that is compatible. So a
reader that asks for a table's lock after a DDL statement queued behind another of our sessions
waits behind the DDL, which waits for us: a deadlock PostgreSQL cannot see when the last edge
is in our client (the coordinator waiting for its workers). Hence three rules:

1. every session locks everything it will read up front, before it reads anything, with a short
   `lock_timeout`: it never waits behind a queued lock for long;
2. once the sessions hold their locks they need no other, and a watcher gives way (cancels the
   scan and lets go) when production has waited behind them for as long as we would wait;
3. a conflict is retried a few times, then could-not-verify naming the table and the statement.

See https://www.postgresql.org/docs/current/explicit-locking.html."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from spectral.errors import CouldNotVerify
from spectral.pg.conn import Sessions, connect
from spectral.redact import redact

LOCK_TIMEOUT = 2.0        # seconds; the environment's lock_timeout when configured
ATTEMPTS = 3
POLL = 0.5                # how often the watcher looks for sessions waiting behind ours
T = TypeVar("T")


class LockConflict(Exception):
    """Another session's lock and ours met on a table: retryable (the scan read nothing)."""

    def __init__(self, table: str | None, pid: int | None, statement: str | None, *,
                 gave_way: bool = False, waited: float = 0, why: str | None = None) -> None:
        self.table, self.pid, self.gave_way, self.why = table, pid, gave_way, why
        self.statement = clean_statement(statement)
        self.waited = waited
        super().__init__(self.describe())

    def describe(self) -> str:
        where = f"table {self.table}" if self.table else "a table"
        if self.why:
            return f"{where} {self.why}"
        who = (f"pid {self.pid} ({self.statement})" if self.pid is not None
               else "another session (gone by the time it was looked up)")
        if self.gave_way:
            return f"gave way to {who}, which waited {self.waited:g}s for {where}"
        return f"could not lock {where} within {self.waited:g}s: {who} holds or waits for it"


_LITERAL = re.compile(r"'(?:[^']|'')*'")


def clean_statement(statement: str | None, limit: int = 200) -> str:
    """A statement fit for a one-line message: string literals masked (a password is one),
    whitespace collapsed, cut short, redacted."""
    if not statement or statement.startswith("<insufficient privilege>"):
        return "a statement this role may not see"
    text = " ".join(_LITERAL.sub("'…'", statement).split())
    return redact(text if len(text) <= limit else text[:limit - 1] + "…")


def set_timeout(conn: psycopg.Connection[Any], seconds: float) -> None:
    """Every lock this session waits for, it waits for at most `seconds`."""
    conn.execute(sql.SQL("set lock_timeout = {}").format(
        sql.Literal(f"{max(1, int(seconds * 1000))}ms")))


# Relations whose lock a fingerprint takes up front: the tables it reads, and partitioned
# tables. Views are described, not read (their description locks what it needs, within
# lock_timeout); LOCK TABLE refuses materialized views. ACCESS SHARE needs SELECT.
LOCKABLE_SQL = """
select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%s) and c.relkind in ('r', 'p')
  and has_schema_privilege(n.oid, 'USAGE') and has_table_privilege(c.oid, 'SELECT')
order by 1, 2
"""


def lockable(conn: psycopg.Connection[Any], schemas: list[str]) -> list[tuple[str, str]]:
    return [(str(s), str(n)) for s, n in conn.execute(LOCKABLE_SQL, (schemas,))]


def lock_all(conn: psycopg.Connection[Any], tables: Iterable[tuple[str, str] | str],
             timeout: float) -> None:
    """ACCESS SHARE on every table, in one statement, waiting at most `timeout` seconds; in a
    transaction that has not read yet, before its snapshot (LOCK takes none). Raises
    LockConflict naming the table and the statement in the way."""
    names = [t if isinstance(t, tuple) else _split(t) for t in tables]
    if not names:
        return
    stmt = sql.SQL("lock table only {} in access share mode").format(
        sql.SQL(", ").join(sql.Identifier(s, n) for s, n in names))
    try:
        with conn.transaction():
            conn.execute(sql.SQL("set local lock_timeout = {}").format(
                sql.Literal(f"{max(1, int(timeout * 1000))}ms")))
            conn.execute(stmt)
    except psycopg.errors.LockNotAvailable:
        raise blocker(conn, [f"{s}.{n}" for s, n in names], timeout) from None
    except psycopg.errors.OutOfMemory as exc:   # the shared lock table is full
        raise CouldNotVerify(
            f"could not lock the {len(names)} tables to read in each of the scan's sessions: "
            f"{(exc.diag.message_primary or '').strip()}",
            hint="fewer sessions (--workers), or raise the server's "
                 "max_locks_per_transaction") from None
    except psycopg.errors.UndefinedTable as exc:
        raise LockConflict(None, None, None, why=f"was dropped while spectral locked the "
                           f"tables ({(exc.diag.message_primary or '').strip()})") from None


def _split(qualified: str) -> tuple[str, str]:
    schema, _, name = qualified.partition(".")
    return schema, name


BLOCKER_SQL = """
select format('%%s.%%s', n.nspname, c.relname), a.pid, a.query
from pg_locks l
join pg_class c on c.oid = l.relation join pg_namespace n on n.oid = c.relnamespace
join pg_stat_activity a on a.pid = l.pid
where l.locktype = 'relation' and l.mode = 'AccessExclusiveLock' and l.pid <> pg_backend_pid()
  and l.database = (select oid from pg_database where datname = current_database())
  and (%(tables)s::text[] is null or format('%%s.%%s', n.nspname, c.relname) = any(%(tables)s))
order by l.granted desc, a.query_start
limit 1
"""


def blocker(conn: psycopg.Connection[Any], tables: list[str] | None,
            waited: float) -> LockConflict:
    """Who holds or waits for ACCESS EXCLUSIVE (the one mode that conflicts with ACCESS SHARE)
    on one of `tables` (any table when None): read right after our wait ended, while the
    statement is still there."""
    try:
        with conn.transaction():
            row = conn.execute(BLOCKER_SQL, {"tables": tables}).fetchone()
    except psycopg.Error:
        row = None
    if row is None:
        return LockConflict(tables[0] if tables and len(tables) == 1 else None, None, None,
                            waited=waited)
    return LockConflict(str(row[0]), int(row[1]), row[2], waited=waited)


# Sessions waiting for a lock that one of ours holds. From pg_locks, which every role may read
# (pg_stat_activity hides other roles' wait events), then pg_blocking_pids for those few only.
WAITERS_SQL = """
select w.pid, a.query,
       (select format('%%s.%%s', n.nspname, c.relname) from pg_locks l
        join pg_class c on c.oid = l.relation join pg_namespace n on n.oid = c.relnamespace
        where l.pid = w.pid and not l.granted and l.locktype = 'relation' limit 1)
from (select distinct pid from pg_locks where not granted and pid <> all(%(ours)s)) w
left join pg_stat_activity a on a.pid = w.pid
where pg_blocking_pids(w.pid) && %(ours)s::int[]
"""


# The sessions of a program spectral runs (pg_dump and its parallel workers), found by the
# application_name it was given. Idle in its transaction, such a session holds its locks and a
# cancel does not reach it: giving way ends it (pg_terminate_backend), which lets go at once.
PROGRAM_SQL = """
select pid from pg_stat_activity
where application_name = any(%(names)s) and pid <> pg_backend_pid()
"""
END_PROGRAM_SQL = """
select pg_terminate_backend(pid) from pg_stat_activity
where application_name = any(%(names)s) and pid <> pg_backend_pid()
"""


class GiveWay:
    """Watches, from a session of its own, for anyone waiting behind our sessions' locks (our
    `sessions`, and the sessions of a program run under one of the application `names`); when
    one has waited `grace` seconds, records the conflict, ends the program's sessions and calls
    `give_way` (which cancels the scan so that every lock is let go)."""

    def __init__(self, conninfo: str, sessions: Iterable[Sessions], grace: float,
                 give_way: Callable[[], None], *, names: Iterable[str] = ()) -> None:
        self.conninfo, self.sessions, self.grace = conninfo, list(sessions), grace
        self.give_way = give_way
        self.names = list(names)
        self.conflict: LockConflict | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="spectral-give-way",
                                        daemon=True)

    def __enter__(self) -> GiveWay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(10)

    def _run(self) -> None:
        try:
            with connect(self.conninfo) as conn:
                self._watch(conn)
        except psycopg.Error:
            return      # a watcher that cannot watch leaves the lock_timeouts to keep us short

    def _watch(self, conn: psycopg.Connection[Any]) -> None:
        first_seen: dict[int, float] = {}
        while not self._done.wait(POLL):
            ours = [pid for group in self.sessions for pid in group.pids()]
            if self.names:
                ours += [int(r[0]) for r in conn.execute(PROGRAM_SQL, {"names": self.names})]
            if not ours:
                continue
            now = time.monotonic()
            waiting = conn.execute(WAITERS_SQL, {"ours": ours}).fetchall()
            first_seen = {pid: first_seen.get(pid, now) for pid, _, _ in waiting}
            for pid, query, table in waiting:
                if now - first_seen[pid] >= self.grace:
                    self.conflict = LockConflict(table, pid, query, gave_way=True,
                                                 waited=round(now - first_seen[pid], 1))
                    if self.names:
                        conn.execute(END_PROGRAM_SQL, {"names": self.names})
                    self.give_way()
                    return


def retrying(attempt: Callable[[], T], what: str, *, attempts: int = ATTEMPTS,
             pause: float = 1.0) -> T:
    """Run `attempt`; on a lock conflict wait a little (the DDL goes through) and run it
    again, at most `attempts` times, then could-not-verify naming the table and statement."""
    conflict: LockConflict | None = None
    for number in range(attempts):
        if number:
            time.sleep(pause * number)
        try:
            return attempt()
        except LockConflict as exc:
            conflict = exc
    assert conflict is not None
    raise CouldNotVerify(
        f"{what}: {conflict.describe()} (tried {attempts} times)",
        hint="run it again once that statement is done; the environment's lock_timeout "
             "sets how long spectral waits for a lock and lets production wait for it")
