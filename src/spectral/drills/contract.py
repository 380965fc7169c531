"""The configured contract, checked on a database (a restored copy, or the live one after an
in-place restore): every contract table present with its columns (and row-level security when
asked), and from every `referenced_by` schema or table at least one foreign key into the
contract tables, all of them validated. An environment without a contract is reported as not
configured, never as passed."""

from __future__ import annotations

from typing import Any

import psycopg

from spectral.config.contract import Contract
from spectral.drills.result import Check, DrillOutcome
from spectral.verify.reader import Rows, as_rows

REFS_SQL = """
select cn.nspname, c.relname, k.conname, format('%%I.%%I', rn.nspname, r.relname),
       k.convalidated
from pg_constraint k
join pg_class c on c.oid = k.conrelid join pg_namespace cn on cn.oid = c.relnamespace
join pg_class r on r.oid = k.confrelid join pg_namespace rn on rn.oid = r.relnamespace
where k.contype = 'f' and format('%%I.%%I', rn.nspname, r.relname) = any(%s)
order by 1, 2, 3
"""
TABLE_SQL = """
select c.relrowsecurity,
       array(select a.attname::text from pg_attribute a where a.attrelid = c.oid
             and a.attnum > 0 and not a.attisdropped)
from pg_class c where c.oid = to_regclass(%s)
"""


def check_contract(db: Rows | psycopg.Connection[Any], contract: Contract | None) -> Check:
    """The contract on `db` (a connection, or a reader of a copy without one)."""
    conn = as_rows(db)
    if contract is None:
        return Check("contract", DrillOutcome.NOT_CONFIGURED,
                     "no contract configured ([environments.<name>.contract]): nothing says "
                     "which tables must survive a restore")
    ok, evidence = True, list[str]()
    for table in contract.tables:
        good, line = _table(conn, table.name, table.columns, table.rls)
        ok, evidence = ok and good, [*evidence, line]
    refs = conn.rows(REFS_SQL, ([t.name for t in contract.tables],))
    for source in contract.referenced_by:
        mine = [r for r in refs if source in (r[0], f"{r[0]}.{r[1]}")]
        if not mine:
            ok = False
            evidence.append(f"no foreign key from {source} into the contract tables: the "
                            f"contract is gone")
        for schema, rel, name, referenced, validated in mine:
            ok = ok and bool(validated)
            evidence.append(f"{schema}.{rel}.{name} -> {referenced}: "
                            f"{'valid' if validated else 'NOT VALIDATED'}")
    return Check(f"contract ({contract.describe()})",
                 DrillOutcome.PASS if ok else DrillOutcome.FAIL,
                 "intact" if ok else "broken", evidence)


def _table(conn: Rows, name: str, columns: list[str], rls: bool) -> tuple[bool, str]:
    found = conn.rows(TABLE_SQL, (name,))
    row = found[0] if found else None
    if row is None:
        return False, f"{name}: MISSING"
    secured, present = bool(row[0]), set(row[1])
    missing = [c for c in columns if c not in present]
    problems = ([f"column(s) {', '.join(missing)} MISSING"] if missing else []) + (
        ["row-level security NOT enabled"] if rls and not secured else [])
    return not problems, f"{name}: " + ("; ".join(problems) if problems else "present")
