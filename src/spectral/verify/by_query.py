"""Read a database that can only be reached through an endpoint running one read-only SQL
statement per request and answering with its rows as JSON objects (Supabase's
`POST /v1/projects/{ref}/database/query/read-only`, run as `supabase_read_only_user`).

The fingerprint is the document `take` writes, read in a few batched statements: one for the
plan (source, tables, column hashes, partitions, sequences), one per few schemas' catalogs,
hash probes together, and the content in ranges of at most BATCH_BLOCKS per request. Every
statement returns one JSON value and fixes its own settings (empty search_path, UTC, ISO dates)
before it reads, whatever the endpoint's session has. Row-level security that would filter the
reading role's rows makes those tables could-not-verify, never a lower count. The requests do not
share a snapshot: this reads a copy nobody writes to (a restored project), and says so in the
document's source."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from psycopg import sql

from spectral.errors import CouldNotVerify
from spectral.verify import content as content_mod
from spectral.verify.catalog import EVENT_TRIGGERS, KINDS, SCHEMA, database_from, objects_from
from spectral.verify.content import Method, TablePlan, TableStatus
from spectral.verify.document import Fingerprint, SchemaEntry, Source
from spectral.verify.fingerprint import (
    PARTITIONS_SQL,
    SEQUENCES_SQL,
    Options,
    document,
    sequences_from_rows,
)

RunStatement = Callable[[str], list[dict[str, Any]]]

BATCH_BLOCKS = 131072        # 1 GB of heap per content request: well inside a request timeout
BATCH_ITEMS = 64             # table ranges or probes per request
SCHEMAS_PER_REQUEST = 4      # catalogs per request (each schema's queries are ~15 kB of SQL)
READ_BY = "read-only query endpoint (one transaction per request, no shared snapshot)"

# What the statements need of the session, set by each statement before it reads.
SETTINGS = (("search_path", ""), ("timezone", "UTC"), ("datestyle", "ISO, YMD"),
            ("extra_float_digits", "1"), ("intervalstyle", "postgres"))


class StatementFailed(CouldNotVerify):
    """The endpoint ran the statement and PostgreSQL refused it (its message is kept)."""


def literal(value: Any) -> str:
    return sql.Literal(value).as_string(None)


_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")


def inline(query: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> str:
    """A psycopg query with its parameters written in as literals (the endpoint takes text)."""
    positional = iter(params) if not isinstance(params, Mapping) else iter(())

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        if m.group(1) is not None:
            assert isinstance(params, Mapping)
            return literal(params[m.group(1)])
        return literal(next(positional))
    return _PLACEHOLDER.sub(sub, query)


def wrap(doc_sql: str) -> str:
    """One statement that fixes the settings, then evaluates `doc_sql` (one row, one column).
    The settings are made in a subquery that cannot be flattened, and the reading subquery
    depends on its row: PostgreSQL has to run them in that order."""
    settings = ", ".join(f"set_config({literal(k)}, {literal(v)}, true)" for k, v in SETTINGS)
    return (f"select (select d.doc from ({doc_sql}) d(doc) where s.ready is not null) as doc "
            f"from (select concat({settings}) as ready offset 0) s")


def rows_json(query: str) -> str:
    return f"(select coalesce(json_agg(x), '[]'::json) from ({query}) x)"


class QueryReader:
    """A database behind a one-statement-per-request endpoint."""

    def __init__(self, run: RunStatement, what: str) -> None:
        self.run, self.what = run, what
        self.requests = 0

    # ---- one statement ------------------------------------------------------------------
    def doc(self, doc_sql: str) -> Any:
        self.requests += 1
        rows = self.run(wrap(doc_sql))
        if len(rows) != 1 or "doc" not in rows[0]:
            raise CouldNotVerify(f"{self.what}: the query endpoint answered {len(rows)} row(s) "
                                 f"without the expected column")
        value = rows[0]["doc"]
        return json.loads(value) if isinstance(value, str) else value

    def rows(self, query: str, params: Sequence[Any] | Mapping[str, Any] = ()
             ) -> list[tuple[Any, ...]]:
        return [tuple(r.values()) for r in self.doc(rows_json(inline(query, params)))]

    # ---- the fingerprint ----------------------------------------------------------------
    def fingerprint(self, opts: Options) -> Fingerprint:
        head = self.doc(_plan_sql(opts))
        present = set(head["present"])
        missing = [s for s in opts.schemas if s not in present]
        if missing and opts.require_schemas:
            raise CouldNotVerify(f"schema {', '.join(missing)} does not exist in database "
                                 f"{head['database']}: nothing to fingerprint (misspelt?)")
        wanted = [s for s in (*opts.schemas, *opts.managed) if s in present]
        catalogs: dict[str, Any] = {}
        for i in range(0, len(wanted), SCHEMAS_PER_REQUEST):
            catalogs.update(self.doc(_catalog_sql(wanted[i:i + SCHEMAS_PER_REQUEST])))
        described = {s: objects_from(s, catalogs[s]["head"], catalogs[s]) for s in wanted}
        schemas = {s: SchemaEntry.of(described.get(s)) for s in opts.schemas}
        managed = {s: SchemaEntry.of(described[s]) for s in opts.managed
                   if s not in opts.schemas and s in described}
        plans = content_mod.plans_from_rows(_tuples(head["tables"]), _tuples(head["hashes"]),
                                            dict(opts.last_change))
        _row_security(plans, head)
        if opts.content:
            self._choose_methods(plans)
        facts = content_mod.fold(plans, self._scan(plans))
        source = Source(head["version"], head["version_num"], head["lsn"], head["database"],
                        head["sysid"], head["timeline"], _iso(head["last_commit"]), READ_BY)
        partitions = {str(k): list(v) for k, v in _tuples(head["partitions"])}
        sequences = sequences_from_rows(_tuples(head["sequences"])) if opts.content else None
        database = SchemaEntry.of(database_from(head["event_triggers"]))
        return document(datetime.fromisoformat(head["now"]), source, opts, schemas, managed,
                        facts, partitions, sequences, database)

    def _choose_methods(self, plans: list[TablePlan]) -> None:
        """The per-column hash where one row of the table takes it, else the text hash: the
        probes go together, and one at a time only when one of them fails."""
        todo = [p for p in plans if p.status is TableStatus.OK]
        for i in range(0, len(todo), BATCH_ITEMS):
            batch = todo[i:i + BATCH_ITEMS]
            try:
                self.doc("select json_build_array(" + ", ".join(_probe(p) for p in batch) + ")")
                ok = [True] * len(batch)
            except StatementFailed:
                ok = [self._succeeds("select json_build_array(" + _probe(p) + ")")
                      for p in batch]
            for plan, good in zip(batch, ok, strict=True):
                plan.method = Method.COLUMN_HASH if good else Method.TEXT_HASH

    def _succeeds(self, doc_sql: str) -> bool:
        try:
            self.doc(doc_sql)
        except StatementFailed:
            return False
        return True

    def _scan(self, plans: list[TablePlan]) -> list[content_mod.Range]:
        items = [(p, lo, hi) for p in sorted(plans, key=lambda p: -p.blocks)
                 if p.status is TableStatus.OK for lo, hi in content_mod.split(p)]
        out: list[content_mod.Range] = []
        batch: list[tuple[TablePlan, int | None, int | None]] = []
        blocks = 0
        for item in [*items, None]:
            size = 0 if item is None else _blocks(item)
            if batch and (item is None or blocks + size > BATCH_BLOCKS
                          or len(batch) >= BATCH_ITEMS):
                out += self._ranges(batch)
                batch, blocks = [], 0
            if item is not None:
                batch.append(item)
                blocks += size
        return out

    def _ranges(self, batch: list[tuple[TablePlan, int | None, int | None]]
                ) -> list[content_mod.Range]:
        try:
            answers = self.doc("select json_build_array(" +
                               ", ".join(_range(*item) for item in batch) + ")")
        except StatementFailed as exc:
            if len(batch) == 1:
                plan = batch[0][0]
                return [(plan.qualified, 0, 0, None,
                         f"the query endpoint could not read {plan.qualified}: {exc.message}")]
            return [r for item in batch for r in self._ranges([item])]
        return [(p.qualified, int(a[0]), int(a[1]), _newest(a[2]), None)
                for (p, _lo, _hi), a in zip(batch, answers, strict=True)]


def _blocks(item: tuple[TablePlan, int | None, int | None]) -> int:
    plan, lo, hi = item
    return (hi if hi is not None else max(plan.blocks, (lo or 0) + 1)) - (lo or 0)


def _probe(plan: TablePlan) -> str:
    return (f"(select count(*) from (select {content_mod.row_hash(plan).as_string(None)} "
            f"from {_table(plan)} t limit 1) p)")


def _range(plan: TablePlan, lo: int | None, hi: int | None) -> str:
    query = content_mod.range_query(plan, lo, hi).as_string(None)
    return (f"(select json_build_array(q.c::text, q.s::text, to_jsonb(q.m)) "
            f"from ({query}) q(c, s, m))")


def _table(plan: TablePlan) -> str:
    return sql.SQL("{}.{}").format(sql.Identifier(plan.schema),
                                   sql.Identifier(plan.name)).as_string(None)


def _newest(value: Any) -> Any:
    """A range's newest change as the direct read has it: a time as a datetime."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def _iso(value: Any) -> str | None:
    return None if value is None else datetime.fromisoformat(str(value)).isoformat()


def _tuples(rows: list[dict[str, Any]] | None) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in rows or []]


def _row_security(plans: list[TablePlan], head: dict[str, Any]) -> None:
    """Tables whose policies apply to the reading role: their rows would be filtered (or the
    read refused), so they are could-not-verify, never counted short."""
    if head["bypass_rls"]:
        return
    secured = {name: (forced, owner) for name, forced, owner in _tuples(head["rls"])}
    for plan in plans:
        if plan.qualified in secured and plan.status is TableStatus.OK:
            forced, owner = secured[plan.qualified]
            if forced or not owner:
                plan.status = TableStatus.COULD_NOT_VERIFY
                plan.reason = (f"row-level security applies to {head['role']}, the role the "
                               f"query endpoint reads as: its rows would be filtered")


def _plan_sql(opts: Options) -> str:
    schemas = list(opts.schemas)
    wanted = literal([*schemas, *opts.managed])
    fn = "has_function_privilege({}, 'execute')".format
    hashes = (rows_json(inline(content_mod.COLUMN_HASHES_SQL, (schemas,))) if opts.content
              else "'[]'::json")
    sequences = rows_json(inline(SEQUENCES_SQL, (schemas,))) if opts.content else "'[]'::json"
    return f"""select json_build_object(
  'version', current_setting('server_version'),
  'version_num', current_setting('server_version_num')::int,
  'lsn', (case when pg_is_in_recovery() then pg_last_wal_replay_lsn()
          else pg_current_wal_lsn() end)::text,
  'now', now(), 'database', current_database(), 'role', current_user,
  'bypass_rls', (select r.rolsuper or r.rolbypassrls from pg_roles r
                 where r.rolname = current_user),
  'sysid', case when {fn("'pg_control_system()'")}
           then (pg_control_system()).system_identifier::text end,
  'timeline', case when {fn("'pg_control_checkpoint()'")}
              then (pg_control_checkpoint()).timeline_id end,
  'last_commit', case when current_setting('track_commit_timestamp') = 'on'
                 and {fn("'pg_last_committed_xact()'")}
                 then (pg_last_committed_xact()).timestamp end,
  'present', (select coalesce(json_agg(n.nspname::text), '[]'::json) from pg_namespace n
              where n.nspname = any({wanted}::text[])),
  'tables', {rows_json(inline(content_mod.TABLES_SQL, (schemas,)))},
  'hashes', {hashes},
  'rls', {rows_json(f'''select format('%I.%I', n.nspname, c.relname), c.relforcerowsecurity,
            pg_has_role(c.relowner, 'USAGE') from pg_class c
            join pg_namespace n on n.oid = c.relnamespace
            where c.relkind = 'r' and c.relrowsecurity
              and n.nspname = any({literal(schemas)}::text[])''')},
  'partitions', {rows_json(inline(PARTITIONS_SQL, (schemas,)))},
  'event_triggers', {rows_json(EVENT_TRIGGERS)},
  'sequences', {sequences})"""


def _catalog_sql(schemas: list[str]) -> str:
    parts = []
    for schema in schemas:
        kinds = [f"'head', (select row_to_json(x) from ({inline(SCHEMA, {'s': schema})}) x)"]
        kinds += [f"{literal(kind)}, {rows_json(inline(query, {'s': schema}))}"
                  for kind, (query, _parts) in KINDS.items()]
        parts.append(f"{literal(schema)}, json_build_object({', '.join(kinds)})")
    return f"select json_build_object({', '.join(parts)})"
