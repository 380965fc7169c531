"""Apply the ordered SQL migrations shipped in the package, like a supabase/migrations folder."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from spectral.errors import CheckFailed

HISTORY = "supabase_migrations.schema_migrations"


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    folder = resources.files("spectral.refdb") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version, _, rest = entry.name.partition("_")
            found.append(Migration(version, rest.removesuffix(".sql"), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


def applied(conn: psycopg.Connection[Any]) -> dict[str, str]:
    row = conn.execute("select to_regclass(%s)", (HISTORY,)).fetchone()
    if row is None or row[0] is None:
        return {}
    return {v: s for v, s in conn.execute(f"select version, sha256 from {HISTORY}")}


def migrate(conn: psycopg.Connection[Any]) -> list[Migration]:
    """Apply pending migrations, each in its own transaction. Refuses when an applied migration's
    file has changed since (its checksum differs): that database no longer matches the code."""
    conn.execute("create schema if not exists supabase_migrations")
    conn.execute(f"create table if not exists {HISTORY} (version text primary key, name text not "
                 f"null, sha256 text not null, applied_at timestamptz not null default now())")
    done = applied(conn)
    ran = []
    for m in migrations():
        if m.version in done:
            if done[m.version] != m.sha256:
                raise CheckFailed(f"migration {m.version}_{m.name} was changed after it was "
                                  f"applied")
            continue
        with conn.transaction():
            conn.execute(m.sql.encode())
            conn.execute(f"insert into {HISTORY} (version, name, sha256) values (%s, %s, %s)",
                         (m.version, m.name, m.sha256))
        ran.append(m)
    return ran
