"""Taking the fingerprint document (verify/document.py): per-schema checksums over canonical
object descriptions, per-table exact counts and content checksums, and where and when it was
taken. Versioned and sealed with a checksum of its own body, so an edited or truncated file is
detected on load."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
import psycopg.sql

from spectral.durable import write_atomic
from spectral.errors import CouldNotVerify, UsageError
from spectral.pg.conn import Sessions, describe
from spectral.verify import content as content_mod
from spectral.verify import locks
from spectral.verify.catalog import CATALOG_VERSION, describe_database, describe_schema
from spectral.verify.collations import Collations, read_collations
from spectral.verify.document import (
    FORMAT,
    VERSION,
    Fingerprint,
    SchemaEntry,
    Source,
    TableFacts,
    canonical,
    sha256,
)
from spectral.verify.pinning import PinFacts, Pinner, SnapshotXids, record_boundary
from spectral.verify.replica import (
    BEFORE_SQL,
    SnapshotLost,
    held_through,
    moving,
    pinned,
    retaken,
    why_lost,
)

if TYPE_CHECKING:   # a fingerprint of a DSN or a file needs no configuration loaded
    from spectral.config.models import EnvironmentConfig

T = TypeVar("T")
# Schemas the platform (Supabase) manages and changes under you: reported as drift only.
MANAGED_SCHEMAS = ("auth", "storage", "extensions", "graphql", "graphql_public", "realtime",
                   "supabase_functions", "supabase_migrations", "vault", "pgsodium", "net",
                   "cron", "pgbouncer")


@dataclass(frozen=True)
class Options:
    schemas: tuple[str, ...]
    content: bool = False
    workers: int | None = None
    managed: tuple[str, ...] = MANAGED_SCHEMAS
    last_change: tuple[tuple[str, str], ...] = ()
    require_schemas: bool = False     # a named schema that is missing: could not verify
    lock_timeout: float = locks.LOCK_TIMEOUT   # longest wait for a lock, ours or production's
    read_rate: float = 0   # MB/s the content scan may read (0: unlimited): the live source's
    # told how the content scan advances (a terminal's bars, a drill's clock); not an option of
    # what is read, so two Options that differ only in it are equal
    progress: content_mod.ScanProgress | None = field(default=None, compare=False, repr=False)
    # told how long the snapshot's transactions held the xmin horizon back (seconds)
    on_held: Callable[[float], None] | None = field(default=None, compare=False, repr=False)
    # the LSN the snapshot stands for, checked against the WAL before the scan (pinning.py)
    pin: Pinner | None = field(default=None, compare=False, repr=False)


def options_for(env: EnvironmentConfig, *, content: bool = False, workers: int | None = None,
                schemas: tuple[str, ...] | None = None, require: bool = False,
                progress: content_mod.ScanProgress | None = None, live: bool = False,
                on_held: Callable[[float], None] | None = None,
                pin: Pinner | None = None) -> Options:
    """The fingerprint options an environment's configuration asks for; `live`: of its live
    database (or its replica), read at most at its source_read_rate (a copy is not held to
    it)."""
    return Options(schemas or tuple(env.schemas), content=content, workers=workers,
                   last_change=tuple(sorted(env.change_columns.items())),
                   require_schemas=require, progress=progress, lock_timeout=env.lock_timeout,
                   read_rate=env.source_read_rate if live else 0, on_held=on_held, pin=pin)


# On a primary the insert position, read after the snapshot: every commit it sees was inserted
# before it (not always written: synchronous_commit=off); its xids and a standby's receipt.
SOURCE_SQL = """
select current_setting('server_version'), current_setting('server_version_num')::int,
       case when pg_is_in_recovery() then pg_last_wal_replay_lsn()
            else pg_current_wal_insert_lsn() end,
       now(), current_database(), pg_export_snapshot(), pg_current_snapshot()::text,
       pg_is_in_recovery(), case when pg_is_in_recovery() then pg_last_wal_receive_lsn() end,
       pg_size_bytes(current_setting('wal_segment_size')),
       current_setting('wal_block_size')::bigint
"""
CONTROL_SQL = """
select (pg_control_system()).system_identifier, (pg_control_checkpoint()).timeline_id
"""


def _last_commit(conn: psycopg.Connection[Any]) -> str | None:
    """The newest commit's time, when track_commit_timestamp is on (else unknown)."""
    try:
        with conn.transaction():
            row = conn.execute("select (pg_last_committed_xact()).timestamp").fetchone()
    except psycopg.Error:
        return None
    return row[0].isoformat() if row and row[0] is not None else None


def _control(conn: psycopg.Connection[Any]) -> tuple[str | None, int | None]:
    """System identifier and timeline need pg_monitor or superuser; without them, unknown."""
    try:
        with conn.transaction():
            row = conn.execute(CONTROL_SQL).fetchone()
    except psycopg.errors.InsufficientPrivilege:
        return None, None
    assert row is not None
    return str(row[0]), int(row[1])


def take(conninfo: str, opts: Options, snapshot: str | None = None) -> Fingerprint:
    """Fingerprint one database, schema and data read as of one snapshot (the one exported as
    `snapshot` by another session, when given: a pg_dump of the same instant, say). A lock
    conflict with production starts it again (verify/locks.py), a few times at most; so does
    a replica's replay that moved while the snapshot was taken, and a scan whose snapshot's
    session did not survive it (verify/replica.py)."""
    what = f"could not fingerprint {describe(conninfo)}"
    return retaken(lambda: locks.retrying(
        lambda: _guarded(conninfo, opts.lock_timeout, lambda g: _take_once(g, opts, snapshot)),
        what), what)


@dataclass
class _Guard:
    """One attempt's sessions: the coordinator's connection, the scan's sessions, and the flag
    that stops the scan."""
    conninfo: str
    conn: psycopg.Connection[Any]
    workers: Sessions
    stop: threading.Event
    lock_timeout: float


def _guarded(conninfo: str, lock_timeout: float, body: Callable[[_Guard], T]) -> T:
    """Run `body` with a coordinator connection whose every lock wait is short, and a watcher
    that cancels the coordinator's and the scan's queries when production has waited behind
    them for `lock_timeout` (the attempt then ends as that LockConflict)."""
    coordinator, workers, stop = Sessions(), Sessions(), threading.Event()

    def give_way() -> None:
        stop.set()
        workers.cancel()
        coordinator.cancel()

    with coordinator.open(conninfo, autocommit=False) as conn, \
            locks.GiveWay(conninfo, (coordinator, workers), lock_timeout, give_way) as watch:
        try:
            conn.execute("set search_path = ''")   # deparsed names come out schema-qualified
            locks.set_timeout(conn, lock_timeout)
            return body(_Guard(conninfo, conn, workers, stop, lock_timeout))
        except psycopg.errors.LockNotAvailable:
            if watch.conflict is not None:
                raise watch.conflict from None
            conn.rollback()
            raise locks.blocker(conn, None, lock_timeout) from None
        except psycopg.OperationalError as exc:
            if watch.conflict is not None:
                raise watch.conflict from None
            if conn.broken:   # the snapshot's own session ended: taken again (SnapshotLost)
                raise SnapshotLost(why_lost(exc)) from None
            raise
        except Exception:
            if watch.conflict is not None:   # cancelled to give way: that is the reason
                raise watch.conflict from None
            raise
        except BaseException:   # Ctrl-C, SIGTERM: the scan's sessions stop too, at once
            stop.set()
            workers.cancel()
            raise


def _begin(g: _Guard, schemas: list[str], snapshot: str | None) -> tuple[set[str], str | None]:
    """Open the snapshot's transaction with every table of `schemas` locked before the
    snapshot is taken (a TRUNCATE or a rewrite committed between the two would read as an
    empty table). The tables are listed in a transaction of their own: LOCK takes no snapshot,
    a query does. Returns the locked tables and, on a replica, the replay LSN before the
    snapshot it takes (verify/replica.py; an imported one's instant is its exporter's)."""
    tables = locks.lockable(g.conn, schemas)
    row = g.conn.execute(BEFORE_SQL).fetchone() if snapshot is None else None
    g.conn.commit()
    g.conn.execute("set transaction isolation level repeatable read, read only")
    if snapshot is not None:
        g.conn.execute(psycopg.sql.SQL("set transaction snapshot {}").format(
            psycopg.sql.Literal(snapshot)))
    locks.lock_all(g.conn, tables, g.lock_timeout)
    return {f"{s}.{n}" for s, n in tables}, None if row is None or row[0] is None else str(row[0])


def _pin_facts(lsn: Any, xids: str, recovering: bool, received: Any) -> PinFacts:
    return PinFacts(str(lsn), SnapshotXids.parse(xids, complete=not recovering),
                    bool(recovering), None if received is None else str(received))


def _all_locked(plans: list[content_mod.TablePlan], locked: set[str]) -> None:
    for plan in plans:
        if plan.status is content_mod.TableStatus.OK and plan.qualified not in locked:
            raise locks.LockConflict(plan.qualified, None, None,
                                     why="was created while spectral locked the tables")


def _take_once(g: _Guard, opts: Options, snapshot: str | None) -> Fingerprint:
    conn, imported = g.conn, snapshot is not None
    # not MVCC: read before the snapshot, so a copy logged ahead at its LSN is never behind
    sequences = _sequences(conn, list(opts.schemas)) if opts.content else None
    locked, before = _begin(g, list(opts.schemas) + list(opts.managed), snapshot)
    held = time.monotonic()
    row = conn.execute(SOURCE_SQL).fetchone()
    assert row is not None
    version, version_num, lsn, now, database, snapshot, xids, recovering, received = row[:9]
    if not recovering:   # past a page header: the same state as the page's start
        lsn = record_boundary(str(lsn), int(row[9]), int(row[10]))
    pin = None if imported else opts.pin   # an imported snapshot is its exporter's
    pins = None if pin is None else _pin_facts(lsn, xids, recovering, received)
    if before is not None and str(lsn) != before:   # which commits it saw: from the WAL
        pins = moving(conn, before, str(lsn), pins, int(row[9]))
    if pin is not None and pins is not None and pins.in_recovery:   # before the scan
        lsn = pinned(conn, pin, pins, held)
    present = _existing(conn, list(opts.schemas) + list(opts.managed))
    missing = [s for s in opts.schemas if s not in present]
    if missing and opts.require_schemas:
        raise CouldNotVerify(f"schema {', '.join(missing)} does not exist in database "
                             f"{database}: nothing to fingerprint (misspelt?)")
    readable = [s for s in opts.schemas if s in present]
    plans = content_mod.plan_tables(conn, readable, opts.content, dict(opts.last_change))
    _all_locked(plans, locked)
    # The workers read the tables while this session reads what the scan does not need (control
    # data, collations, the catalogs): round trips more than cores. This session's transaction
    # stays open until the last range is read (replica.SnapshotLost).
    with ThreadPoolExecutor(1) as pool:
        scanning = pool.submit(content_mod.scan, g.conninfo, snapshot, plans,
                               workers=opts.workers, progress=opts.progress, stop=g.stop,
                               sessions=g.workers, lock_timeout=g.lock_timeout,
                               rate=opts.read_rate)
        try:
            sysid, timeline = _control(conn)
            last_commit = _last_commit(conn)
            collations = read_collations(conn)
            schemas = {s: SchemaEntry.of(describe_schema(conn, s) if s in present else None)
                       for s in opts.schemas}
            managed = {s: SchemaEntry.of(objs) for s in opts.managed if s not in opts.schemas
                       and s in present and (objs := describe_schema(conn, s)) is not None}
            whole = SchemaEntry.of(describe_database(conn))
            partitions = _partitions(conn, readable)
            facts = scanning.result()
        except BaseException:
            g.stop.set()   # an error or Ctrl-C here: the workers' queries are cancelled
            g.workers.cancel()
            raise
    held_through(conn)
    if opts.on_held is not None:
        opts.on_held(time.monotonic() - held)
    if pin is not None and pins is not None and not pins.in_recovery:
        lsn = pin(pins)   # after the scan: the primary's xmin horizon is not held meanwhile
    source = Source(version, version_num, str(lsn), database, sysid, timeline, last_commit)
    return document(now, source, opts, schemas, managed, facts, partitions, sequences, whole,
                    collations)


def document(now: datetime, source: Source, opts: Options,
             schemas: dict[str, SchemaEntry], managed: dict[str, SchemaEntry],
             facts: dict[str, content_mod.TableFacts], partitions: dict[str, list[str]],
             sequences: dict[str, int | str | None] | None,
             database: SchemaEntry, collations: Collations | None = None) -> Fingerprint:
    """The sealed fingerprint document, however its parts were read."""
    return Fingerprint(now.astimezone(UTC).isoformat(timespec="milliseconds"), source,
                       opts.content, CATALOG_VERSION, schemas, managed,
                       {name: _facts(f) for name, f in sorted(facts.items())}, partitions,
                       sequences, database=database, collations=collations).sealed()


def retake(conninfo: str, schemas: tuple[str, ...], tables: set[str],
           method: content_mod.Method, snapshot: str | None = None) -> dict[str, TableFacts]:
    """Some tables' facts again, all hashed by `method` (as of `snapshot` when given): two
    servers whose hash functions differ (another major version) compare on common ground."""
    def once(g: _Guard) -> dict[str, TableFacts]:
        locked, _ = _begin(g, list(schemas), snapshot)
        row = g.conn.execute("select pg_export_snapshot()").fetchone()
        assert row is not None
        plans = [p for p in content_mod.plan_tables(g.conn, list(schemas), False, {})
                 if p.qualified in tables]
        _all_locked(plans, locked)
        facts = content_mod.scan(conninfo, str(row[0]), plans, method=method, stop=g.stop,
                                 sessions=g.workers, lock_timeout=g.lock_timeout)
        held_through(g.conn)
        return {name: _facts(f) for name, f in facts.items()}

    what = f"could not read {describe(conninfo)} again"
    return retaken(lambda: locks.retrying(
        lambda: _guarded(conninfo, locks.LOCK_TIMEOUT, once), what), what)


PARTITIONS_SQL = """
select format('%%I.%%I', n.nspname, c.relname),
       array(select format('%%I.%%I', ln.nspname, l.relname)
             from pg_partition_tree(c.oid) t join pg_class l on l.oid = t.relid
             join pg_namespace ln on ln.oid = l.relnamespace
             where t.isleaf order by 1)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind = 'p' and n.nspname = any(%s) order by 1
"""


def _existing(conn: psycopg.Connection[Any], schemas: list[str]) -> set[str]:
    """Which of `schemas` exist (one query, instead of one failed description each)."""
    return {str(r[0]) for r in conn.execute(
        "select nspname::text from pg_namespace where nspname = any(%s)", (schemas,))}


def _partitions(conn: psycopg.Connection[Any], schemas: list[str]) -> dict[str, list[str]]:
    """Each partitioned table's leaf partitions (a load-bearing parent is counted over them)."""
    return {str(r[0]): list(r[1]) for r in conn.execute(PARTITIONS_SQL, (schemas,))}


def _sequences(conn: psycopg.Connection[Any], schemas: list[str]
               ) -> dict[str, int | str | None]:
    """Each sequence's last value (None before its first nextval, "unreadable" without the
    privilege): a restore whose sequence is behind its table's keys breaks the next insert."""
    return sequences_from_rows(conn.execute(SEQUENCES_SQL, (schemas,)).fetchall())


SEQUENCES_SQL = """
select format('%%I.%%I', schemaname, sequencename), last_value,
       has_sequence_privilege(format('%%I.%%I', schemaname, sequencename), 'select')
from pg_sequences where schemaname = any(%s) order by 1
"""


def sequences_from_rows(rows: list[Any]) -> dict[str, int | str | None]:
    return {str(name): (int(last) if last is not None else None) if readable else "unreadable"
            for name, last, readable in rows}


def _facts(f: content_mod.TableFacts) -> TableFacts:
    """What the document keeps of a table the scan read."""
    return TableFacts(f.rows, f.content, f.method, f.last_change, f.status, f.reason,
                      f.locator)


def seal(body: dict[str, Any]) -> dict[str, Any]:
    """A document as JSON with the seal of the rest (to check a file's, or make one)."""
    body = {k: v for k, v in body.items() if k != "seal"}
    return {**body, "seal": sha256(canonical(body))}


def save(doc: Fingerprint, path: Path) -> None:
    write_atomic(path, json.dumps(doc.to_json(), indent=1, sort_keys=True, ensure_ascii=False)
                 + "\n")


def load(path: Path) -> Fingerprint:
    """Read a fingerprint file, refusing other formats, other versions and damaged files."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the fingerprint: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise CouldNotVerify(f"{path}: corrupted fingerprint (not valid JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UsageError(f"{path}: not a spectral fingerprint file")
    if doc.get("version") != VERSION:
        raise UsageError(f"{path}: fingerprint format version {doc.get('version')} is not "
                         f"supported (this spectral reads version {VERSION})")
    if seal(doc).get("seal") != doc.get("seal"):
        raise CouldNotVerify(f"{path}: corrupted fingerprint (its seal does not match its "
                             f"contents: edited or damaged)")
    return Fingerprint.from_json(doc)


def now_utc() -> datetime:
    return datetime.now(UTC)
