"""Who must be invited again after a provider exit. Identities stay with the old provider (the
auth.users shim carries ids only), so every row of a moved table that refers to an identity
shim is a user who signs in again: one CSV per such table (core.users in the reference), and,
where the reference's invitation table exists, the `core.domain_invites` rows to re-issue."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path

from psycopg import sql

from spectral.durable import write_atomic
from spectral.exit.shims import SHIMS
from spectral.pg.conn import connect

USER_TABLES_SQL = """
select distinct c.conrelid::regclass::text from pg_constraint c
where c.contype = 'f' and c.confrelid::regclass::text = any(%s) order by 1
"""
INVITES = ("core.users", "core.domain_invites")


def write_reinvites(dsn: str, folder: Path) -> list[str]:
    """Write the re-invite files from the database at `dsn`; returns their paths."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    written: list[str] = []
    with connect(dsn) as conn:
        conn.execute("set search_path = ''")
        tables = [r[0] for r in conn.execute(USER_TABLES_SQL, (list(SHIMS),))]
        for table in tables:
            cur = conn.execute(sql.SQL("select * from {} order by 1").format(sql.SQL(table)))
            header = [d.name for d in cur.description or []]
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(cur.fetchall())
            path = folder / f"reinvites-{stamp}-{_file_part(table)}.csv"
            write_atomic(path, out.getvalue())
            written.append(str(path))
        have = {r[0] for r in conn.execute(
            "select format('%%I.%%I', schemaname, tablename) from pg_tables "
            "where format('%%I.%%I', schemaname, tablename) = any(%s)", (list(INVITES),))}
        if set(INVITES) <= have:
            rows = conn.execute("select u.org_id, u.email::text, u.role::text from core.users u "
                                "order by u.email").fetchall()
            inserts = "".join(
                "insert into core.domain_invites (org_id, email, role, expires_at) values "
                f"({r[0]}, {_lit(r[1])}, {_lit(r[2])}, now() + interval '14 days');\n"
                for r in rows)
            path = folder / f"reinvites-{stamp}.sql"
            write_atomic(path, inserts)
            written.append(str(path))
    return written


def _file_part(name: str) -> str:
    """A table's name as part of a file name in the evidence folder: a quoted identifier may
    hold `/` or `..`, which must never leave the folder."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name).strip(".") or "table"


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
