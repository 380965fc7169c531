"""The core contract: worlds and platform fail closed without the core.* tables they reference.
After a restore, every table those schemas reference in core must exist, with the referenced
columns, and every such foreign key must be present and validated."""

from __future__ import annotations

from typing import Any

import psycopg

CONTRACT_SQL = """
select k.conrelid::regclass::text as referencing, k.conname,
       format('%%I.%%I', rn.nspname, r.relname) as referenced, k.convalidated
from pg_constraint k
join pg_class c on c.oid = k.conrelid join pg_namespace cn on cn.oid = c.relnamespace
join pg_class r on r.oid = k.confrelid join pg_namespace rn on rn.oid = r.relnamespace
where k.contype = 'f' and cn.nspname = any(%s) and rn.nspname = 'core'
order by 1, 2
"""
REQUIRED = ("core.orgs", "core.users", "core.partners")


def check_core_contract(conn: psycopg.Connection[Any],
                        dependents: tuple[str, ...] = ("worlds", "platform")
                        ) -> tuple[bool, list[str]]:
    """(intact, evidence lines)."""
    evidence: list[str] = []
    ok = True
    for table in REQUIRED:
        row = conn.execute("select to_regclass(%s)", (table,)).fetchone()
        present = bool(row and row[0])
        evidence.append(f"{table}: {'present' if present else 'MISSING'}")
        ok = ok and present
    refs = conn.execute(CONTRACT_SQL, (list(dependents),)).fetchall()
    if not refs:
        evidence.append("no foreign key from worlds or platform into core: the contract is "
                        "gone")
        ok = False
    for referencing, name, referenced, validated in refs:
        if not validated:
            ok = False
        evidence.append(f"{referencing}.{name} -> {referenced}: "
                        f"{'valid' if validated else 'NOT VALIDATED'}")
    return ok, evidence
