"""What Supabase's `POST /v1/projects/{ref}/database/query/read-only` does with a statement, on a
real cluster: run it as `supabase_read_only_user` (pg_read_all_data, BYPASSRLS as on Supabase
unless a test says otherwise) in a read-only transaction, and answer its rows as JSON objects.
The session is deliberately unlike ours (a search_path with public, SQL dates, New York time,
fewer float digits), so a reader that relies on session settings it did not make is caught."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg.rows import dict_row

from spectral.pg.conn import connect

ROLE = "supabase_read_only_user"
SESSION = ("set local search_path = \"$user\", public", "set local datestyle = 'SQL, DMY'",
           "set local timezone = 'America/New_York'", "set local extra_float_digits = 0",
           "set local intervalstyle = 'sql_standard'")


class StatementError(Exception):
    pass


def ensure_role(dsn: str, bypass_rls: bool = True) -> None:
    with connect(dsn) as conn:
        if conn.execute("select 1 from pg_roles where rolname = %s", (ROLE,)).fetchone() is None:
            conn.execute(f"create role {ROLE} nologin")
            conn.execute(f"grant pg_read_all_data to {ROLE}")
        conn.execute(f"alter role {ROLE} {'bypassrls' if bypass_rls else 'nobypassrls'}")


def run_read_only(dsn: str, query: str) -> list[dict[str, Any]]:
    """The statement's rows as the endpoint answers them (JSON values), or StatementError."""
    try:
        with psycopg.connect(dsn, row_factory=dict_row, autocommit=True) as conn:
            conn.execute("begin read only")
            conn.execute(f"set local role {ROLE}")
            for setting in SESSION:
                conn.execute(setting)
            rows = conn.execute(query.encode()).fetchall()
            conn.execute("rollback")
    except psycopg.Error as exc:
        raise StatementError(f"Failed to run sql query: ERROR: {exc.sqlstate}: "
                             f"{(exc.diag.message_primary or str(exc)).strip()}") from None
    return json.loads(json.dumps(rows, default=str))
