"""`spectral dr salvage`: get back exactly the rows one transaction deleted (and, with
--revert-updates, the values it overwrote) without throwing away anything written since.

A side instance is restored to just before the transaction. A physical restore keeps every
tuple where it was, so the tuples the WAL says the transaction touched (block, offset) are read
there by ctid: precisely its victims, not rows someone deleted later on purpose. They go back in
one transaction on the live database; a row whose key a later transaction wrote is reported as a
conflict, never overwritten. The side instances are always torn down."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from spectral.confirm import AssumeYes, Operator
from spectral.environment import Environment
from spectral.errors import CheckFailed, CouldNotVerify, RefusedError, UsageError
from spectral.ledger import EntryKind
from spectral.pg.conn import connect
from spectral.playbooks.damage import Damage, find_damage
from spectral.providers.base import Capability, Copy, CopyRequest, Provider, require
from spectral.recovery_target import XidTarget
from spectral.undo import crash_point  # test-only kill points


@dataclass
class SalvageResult:
    table: str
    xid: int
    restored_rows: list[dict[str, Any]] = field(default_factory=list)
    reverted_rows: list[dict[str, Any]] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    dry_run: bool = False
    # rows already exactly as the transaction found them (an earlier run, killed before it
    # recorded, put them back): nothing to write, and no conflict
    already_back: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = {"table": self.table, "xid": self.xid, "dry_run": self.dry_run,
               "restored": len(self.restored_rows), "reverted": len(self.reverted_rows),
               "conflicts": self.conflicts, "rows": self.restored_rows[:100]}
        if self.already_back:
            out["already_back"] = len(self.already_back)
        return out

    def summary(self) -> str:
        back = (f"; {len(self.already_back)} row(s) already back (put back by an earlier run "
                f"that was stopped before it recorded them)" if self.already_back else "")
        return (f"salvaged {len(self.restored_rows)} row(s) of {self.table} deleted by "
                f"transaction {self.xid}{back}")


@dataclass(frozen=True)
class SalvageEntry:
    """A salvage as the ledger keeps it: an incident of the self-inflicted playbook, without
    the rows themselves (`IncidentRecord` reads it back)."""

    KIND: ClassVar[EntryKind] = EntryKind.INCIDENT
    result: SalvageResult

    def to_json(self) -> dict[str, Any]:
        return {"playbook": "self-inflicted", "summary": self.result.summary(),
                **{k: v for k, v in self.result.to_json().items() if k != "rows"}}


def _key_columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        "select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid "
        "and a.attnum = any(i.indkey) where i.indrelid = to_regclass(%s) and i.indisprimary "
        "order by array_position(i.indkey, a.attnum)", (table,)).fetchall()
    if not rows:
        raise UsageError(f"{table} has no primary key: rows cannot be matched safely")
    return [r[0] for r in rows]


def _columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "select attname from pg_attribute where attrelid = to_regclass(%s) and attnum > 0 "
        "and not attisdropped and attgenerated = '' order by attnum", (table,))]


def _rows_at(dsn: str, table: str, tids: list[tuple[int, int]]) -> list[dict[str, Any]]:
    if not tids:
        return []
    with connect(dsn) as conn:
        q = sql.SQL("select to_jsonb(t) from {} t where t.ctid = any(%s::tid[])").format(
            sql.SQL(table))
        return [r[0] for r in conn.execute(q, ([f"({b},{o})" for b, o in tids],))]


def _by_key(dsn: str, table: str, keys: list[str], values: list[list[Any]]
            ) -> dict[tuple[Any, ...], dict[str, Any]]:
    if not values:
        return {}
    with connect(dsn) as conn:
        q = sql.SQL("select to_jsonb(t) from {} t where ({}) in (select * from "
                    "jsonb_to_recordset(%s) as x({}))").format(
            sql.SQL(table), sql.SQL(", ").join(sql.Identifier(k) for k in keys),
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(k), sql.SQL(typ))
                               for k, typ in _key_types(conn, table, keys)))
        rows = conn.execute(q, (Jsonb([dict(zip(keys, v, strict=True)) for v in values]),))
        return {tuple(r[0][k] for k in keys): r[0] for r in rows}


def _key_types(conn: psycopg.Connection[Any], table: str, keys: list[str]
               ) -> list[tuple[str, str]]:
    types = dict(conn.execute(
        "select attname, format_type(atttypid, atttypmod) from pg_attribute "
        "where attrelid = to_regclass(%s) and attnum > 0", (table,)).fetchall())
    return [(k, types[k]) for k in keys]


def salvage(provider: Provider, live_dsn: str, table: str, xid: int, *,
            dry_run: bool = False, revert_updates: bool = False) -> SalvageResult:
    archive = provider.wal_archive()
    if archive is None:
        raise UsageError(f"salvage needs the WAL archive, which {provider.describe()} "
                         f"({provider.kind}) does not offer; restore in place to just before "
                         f"the transaction instead (the self-inflicted playbook)")
    require(provider, Capability.UNATTENDED_COPY, "salvage")
    with connect(live_dsn) as conn:
        damage = next((d for d in find_damage(archive, conn, table)
                       if d.xid == xid), None)
        if damage is None:
            raise UsageError(f"transaction {xid} did not delete or update {table} "
                             f"(spectral dr find-damage --table {table})")
        if damage.op == "truncate":
            raise UsageError(f"transaction {xid} truncated {table}: restore the table from a "
                             f"point-in-time restore instead (it touched every row)")
        keys, cols = _key_columns(conn, table), _columns(conn, table)
    result = SalvageResult(table, xid, dry_run=dry_run)
    before = _side_copy(provider, XidTarget(xid, exclusive=True))
    after: Copy | None = None
    try:
        crash_point("salvage:copy-made")
        victims = _rows_at(before.dsn, table, damage.tuples)
        touched = len(set(damage.tuples))
        if len(victims) != touched:
            raise CouldNotVerify(f"the WAL says transaction {xid} touched {touched} row(s) of "
                                 f"{table}, but {len(victims)} were found at those positions "
                                 f"just before it; nothing was changed")
        if revert_updates:
            after = _side_copy(provider, XidTarget(xid))
        _apply(live_dsn, table, keys, cols, victims, damage, after.dsn if after else None,
               result)
        if not dry_run:
            crash_point("salvage:written")
    finally:
        for copy in (before, after):
            if copy is not None:
                provider.remove_copy(copy, AssumeYes(), lambda _m: None)
    if not dry_run:
        crash_point("salvage:copies-removed")
        _check_back(live_dsn, table, keys, result)
    return result


def _side_copy(provider: Provider, target: XidTarget) -> Copy:
    """A side instance this run owns (removed as an orphan if the run dies)."""
    return provider.provision_copy(target, CopyRequest(), AssumeYes(), lambda _m: None)


def _check_back(live_dsn: str, table: str, keys: list[str], result: SalvageResult) -> None:
    """Every row the salvage put back is in the live table now (the rest were reported as
    conflicts): a salvage never reports success with a deleted row still missing."""
    values = [[r[k] for k in keys] for r in result.restored_rows]
    present = _by_key(live_dsn, table, keys, values)
    missing = [v for v in values if tuple(v) not in present]
    if missing:
        raise CheckFailed(f"{len(missing)} row(s) that transaction {result.xid} deleted are "
                          f"still missing from {table} after the salvage (first: {missing[0]})")


def _apply(live_dsn: str, table: str, keys: list[str], cols: list[str],
           victims: list[dict[str, Any]], damage: Damage, after_dsn: str | None,
           result: SalvageResult) -> None:
    values = [[v[k] for k in keys] for v in victims]
    live = _by_key(live_dsn, table, keys, values)
    after = _by_key(after_dsn, table, keys, values) if after_dsn else {}
    inserts, updates = [], []
    for row in victims:
        key = tuple(row[k] for k in keys)
        if live.get(key) == row:
            result.already_back.append(row)   # as the transaction found it: nothing to do
            continue
        if key not in live:
            if key not in after or not after_dsn:
                inserts.append(row)          # deleted by the transaction and still gone
            continue
        if after_dsn and key in after:       # updated by the transaction
            if live[key] == after[key]:
                updates.append(row)          # nobody wrote it since: revert
            else:
                result.conflicts.append(f"{dict(zip(keys, key, strict=True))}: changed again "
                                        f"after transaction {damage.xid}; left as it is")
        elif not after_dsn and damage.op == "update":
            continue
        else:
            result.conflicts.append(f"{dict(zip(keys, key, strict=True))}: a row with this key "
                                    f"was written after transaction {damage.xid}; left as it is")
    result.restored_rows, result.reverted_rows = inserts, updates
    if result.dry_run or not (inserts or updates):
        return
    with connect(live_dsn, autocommit=False) as conn, conn.transaction():
        ident = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
        for row in inserts:
            conn.execute(sql.SQL("insert into {} ({}) overriding system value select {} from "
                                 "jsonb_populate_record(null::{}, %s)").format(
                sql.SQL(table), ident, ident, sql.SQL(table)), (Jsonb(row),))
        for row in updates:
            sets = sql.SQL(", ").join(sql.SQL("{} = r.{}").format(sql.Identifier(c),
                                                                   sql.Identifier(c))
                                      for c in cols if c not in keys)
            match = sql.SQL(" and ").join(sql.SQL("t.{} = r.{}").format(sql.Identifier(k),
                                                                        sql.Identifier(k))
                                          for k in keys)
            conn.execute(sql.SQL("update {} t set {} from jsonb_populate_record(null::{}, %s) r "
                                 "where {}").format(sql.SQL(table), sets, sql.SQL(table), match),
                         (Jsonb(row),))


def salvage_and_record(environment: Environment, table: str, xid: int, operator: Operator, *,
                       dry_run: bool = False, revert_updates: bool = False) -> SalvageResult:
    """Plan the salvage, show it and ask, write it, and record it as an incident entry (counts
    and conflicts; no row data goes into the ledger)."""
    provider = environment.provider
    # side instances a killed salvage left (listed by `dr instances` as orphaned) go first
    provider.tidy(environment.report or (lambda _m: None))
    with provider.source() as live:
        plan = salvage(provider, live, table, xid, dry_run=True, revert_updates=revert_updates)
        if dry_run or not (plan.restored_rows or plan.reverted_rows):
            result = plan
            result.dry_run = dry_run
        else:
            details = [f"re-insert {len(plan.restored_rows)} row(s) deleted by {xid}",
                       f"revert {len(plan.reverted_rows)} row(s) it updated",
                       *[f"conflict: {c}" for c in plan.conflicts]]
            if not operator.confirm(f"Write these into {table}?", details):
                raise RefusedError("salvage not confirmed; nothing was written")
            result = salvage(provider, live, table, xid, revert_updates=revert_updates)
    if not dry_run:
        environment.ledger.record(environment.name, SalvageEntry(result))
    return result
