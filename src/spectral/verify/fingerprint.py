"""The fingerprint document: per-schema checksums over canonical object descriptions, per-table
exact counts and content checksums, and where and when it was taken. Versioned and sealed with
a checksum of its own body, so an edited or truncated file is detected on load."""

from __future__ import annotations

import hashlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import psycopg.sql

from spectral.config.models import EnvironmentConfig
from spectral.durable import write_atomic
from spectral.errors import CouldNotVerify, UsageError
from spectral.pg.conn import connect
from spectral.verify import content as content_mod
from spectral.verify.catalog import CATALOG_VERSION, describe_schema

FORMAT = "spectral.fingerprint"
VERSION = 1
# Schemas the platform (Supabase) manages and changes under you: reported as drift only.
MANAGED_SCHEMAS = ("auth", "storage", "extensions", "graphql", "graphql_public", "realtime",
                   "supabase_functions", "supabase_migrations", "vault", "pgsodium", "net",
                   "cron", "pgbouncer")


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def schema_entry(objects: dict[str, Any] | None) -> dict[str, Any]:
    if objects is None:
        return {"missing": True, "checksum": None, "objects": {}}
    return {"missing": False, "checksum": sha256(canonical(objects)), "objects": objects}


@dataclass(frozen=True)
class Options:
    schemas: tuple[str, ...]
    content: bool = False
    workers: int | None = None
    managed: tuple[str, ...] = MANAGED_SCHEMAS
    last_change: tuple[tuple[str, str], ...] = ()
    require_schemas: bool = False     # a named schema that is missing: could not verify
    # told how the content scan advances (a terminal's bars, a drill's clock); not an option of
    # what is read, so two Options that differ only in it are equal
    progress: content_mod.ScanProgress | None = field(default=None, compare=False, repr=False)


def options_for(env: EnvironmentConfig, *, content: bool = False, workers: int | None = None,
                schemas: tuple[str, ...] | None = None, require: bool = False,
                progress: content_mod.ScanProgress | None = None) -> Options:
    """The fingerprint options an environment's configuration asks for."""
    return Options(schemas or tuple(env.schemas), content=content, workers=workers,
                   last_change=tuple(sorted(env.change_columns.items())),
                   require_schemas=require, progress=progress)


SOURCE_SQL = """
select current_setting('server_version'), current_setting('server_version_num')::int,
       case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end,
       now(), current_database(), pg_export_snapshot()
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


def take(conninfo: str, opts: Options, snapshot: str | None = None) -> dict[str, Any]:
    """Fingerprint one database, schema and data read as of one snapshot (the one exported as
    `snapshot` by another session, when given: a pg_dump of the same instant, say)."""
    with connect(conninfo, autocommit=False) as conn:
        conn.execute("set search_path = ''")   # deparsed names come out schema-qualified
        conn.execute("set transaction isolation level repeatable read, read only")
        if snapshot is not None:
            conn.execute(psycopg.sql.SQL("set transaction snapshot {}").format(
                psycopg.sql.Literal(snapshot)))
        row = conn.execute(SOURCE_SQL).fetchone()
        assert row is not None
        version, version_num, lsn, now, database, snapshot = row
        sysid, timeline = _control(conn)
        last_commit = _last_commit(conn)
        present = _existing(conn, list(opts.schemas) + list(opts.managed))
        missing = [s for s in opts.schemas if s not in present]
        if missing and opts.require_schemas:
            raise CouldNotVerify(f"schema {', '.join(missing)} does not exist in database "
                                 f"{database}: nothing to fingerprint (misspelt?)")
        readable = [s for s in opts.schemas if s in present]
        plans = content_mod.plan_tables(conn, readable, opts.content, dict(opts.last_change))
        # The tables are read by the workers while this session describes the catalogs: the
        # catalog queries wait on round trips more than on the cores the scan keeps busy.
        stop = threading.Event()
        with ThreadPoolExecutor(1) as pool:
            scanning = pool.submit(content_mod.scan, conninfo, snapshot, plans,
                                   workers=opts.workers, progress=opts.progress, stop=stop)
            try:
                schemas = {s: schema_entry(describe_schema(conn, s) if s in present else None)
                           for s in opts.schemas}
                managed = {s: schema_entry(objs) for s in opts.managed if s not in opts.schemas
                           and s in present and (objs := describe_schema(conn, s)) is not None}
                partitions = _partitions(conn, readable)
                sequences = _sequences(conn, list(opts.schemas)) if opts.content else None
                facts = scanning.result()
            except BaseException:
                stop.set()   # an error or Ctrl-C here: the workers stop after their range
                raise
        conn.rollback()
    source = {"server_version": version, "server_version_num": version_num,
              "lsn": str(lsn), "database": database, "system_identifier": sysid,
              "timeline": timeline, "last_commit": last_commit}
    return document(now, source, opts, schemas, managed, facts, partitions, sequences)


def document(now: datetime, source: dict[str, Any], opts: Options,
             schemas: dict[str, Any], managed: dict[str, Any],
             facts: dict[str, content_mod.TableFacts], partitions: dict[str, list[str]],
             sequences: dict[str, int | str | None] | None) -> dict[str, Any]:
    """The sealed fingerprint document, however its parts were read."""
    body = {
        "format": FORMAT, "version": VERSION,
        "taken_at": now.astimezone(UTC).isoformat(timespec="milliseconds"),
        "source": source,
        "content": opts.content,
        "catalog_version": CATALOG_VERSION,
        "schemas": schemas,
        "managed": managed,
        "tables": {name: _facts_json(f) for name, f in sorted(facts.items())},
        "partitions": partitions,
        **({"sequences": sequences} if sequences is not None else {}),
    }
    return seal(body)


def retake(conninfo: str, schemas: tuple[str, ...], tables: set[str],
           method: content_mod.Method, snapshot: str | None = None) -> dict[str, Any]:
    """Some tables' facts again, all hashed by `method` (as of `snapshot` when given): two
    servers whose hash functions differ (another major version) compare on common ground."""
    with connect(conninfo, autocommit=False) as conn:
        conn.execute("set search_path = ''")
        conn.execute("set transaction isolation level repeatable read, read only")
        if snapshot is not None:
            conn.execute(psycopg.sql.SQL("set transaction snapshot {}").format(
                psycopg.sql.Literal(snapshot)))
        row = conn.execute("select pg_export_snapshot()").fetchone()
        assert row is not None
        plans = [p for p in content_mod.plan_tables(conn, list(schemas), False, {})
                 if p.qualified in tables]
        facts = content_mod.scan(conninfo, str(row[0]), plans, method=method)
        conn.rollback()
    return {name: _facts_json(f) for name, f in facts.items()}


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


def _facts_json(f: content_mod.TableFacts) -> dict[str, Any]:
    # the locator is physical (it differs after a dump and restore): compare never reads it
    return {"rows": f.rows, "content": f.content, "method": f.method,
            "last_change": f.last_change, "status": f.status.value, "reason": f.reason,
            "locator": f.locator}


def seal(body: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in body.items() if k != "seal"}
    return {**body, "seal": sha256(canonical(body))}


def save(doc: dict[str, Any], path: Path) -> None:
    write_atomic(path, json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n")


def load(path: Path) -> dict[str, Any]:
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
    return doc


def describe_only(conn: psycopg.Connection[Any], schema: str) -> dict[str, Any]:
    """One schema's entry, for callers that already hold a connection."""
    conn.execute("set search_path = ''")
    return schema_entry(describe_schema(conn, schema))


def now_utc() -> datetime:
    return datetime.now(UTC)
