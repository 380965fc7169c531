"""Who must be invited again after a provider exit. Identities stay with the old provider (an
identity shim carries ids only; and even when auth moves as data, the new host has no sign-in
of the old provider's), so every identity the moved data refers to is a user who signs in again.

The list is one CSV: per identity its id, its e-mail (read from the source's identity table
when the source can read it) and, per moved table that refers to identities, the number of its
rows that refer to this one; nothing else (no row of any table: that is personal data). The
referring tables come from the catalog: foreign keys into an identity table (the table shims
of exit/shims.py, e.g. auth.users, whether shimmed or moved as data). A column holding ids
without a foreign key (Supabase's storage.objects.owner) is not found: no name is guessed.

It is read in the dump's snapshot and written, mode 0600, only by an exit that was proven;
with `exit_invites` configured and that table among the moved ones, also the SQL that issues
the invitations (docs/provider-exit.md)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from spectral.config.invites import ExitInvites
from spectral.durable import write_atomic
from spectral.exit.shims import SHIMS

# the table shims: an identity table's name and the column its identities are keyed by
IDENTITY_KEYS: dict[str, str] = {s.identity: s.columns[0] for s in SHIMS.values() if s.columns}
EMAIL_COLUMN = "email"          # Supabase's auth.users.email
MODE = 0o600                    # e-mail addresses: personal data

REFERRERS_SQL = """
select format('%%I.%%I', n.nspname, r.relname),
       array_agg(distinct format('%%I.%%I', fn.nspname, f.relname)),
       array_agg(distinct a.attname::text order by a.attname::text)
from pg_constraint c
join pg_class r on r.oid = c.conrelid join pg_namespace n on n.oid = r.relnamespace
join pg_class f on f.oid = c.confrelid join pg_namespace fn on fn.oid = f.relnamespace
cross join lateral unnest(c.conkey, c.confkey) as k (col, fcol)
join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.col
join pg_attribute fa on fa.attrelid = c.confrelid and fa.attnum = k.fcol
where c.contype = 'f' and c.conparentid = 0 and n.nspname = any(%s)
  and format('%%I.%%I', fn.nspname, f.relname) = any(%s)
  and fa.attname = (%s::jsonb ->> format('%%I.%%I', fn.nspname, f.relname))
group by 1 order by 1
"""


@dataclass(frozen=True)
class Invitee:
    id: str
    email: str | None
    counts: tuple[int, ...]          # per referring table, in the list's order


@dataclass(frozen=True)
class ReinviteList:
    tables: tuple[str, ...]          # the moved tables that refer to identities
    invitees: tuple[Invitee, ...]
    emails: str | None               # why the e-mails are missing; None when they were read
    invite_table: str | None         # the configured invitation table, when it is moved


def read_reinvites(conn: psycopg.Connection[Any], moved: Sequence[str],
                   invites: ExitInvites | None = None) -> ReinviteList | str:
    """The list, read through `conn` (the source, in the dump's snapshot); or why it could not
    be read. Row-level security is off: a count that policies would filter is an error, not a
    smaller number."""
    try:
        with conn.transaction():
            conn.execute("set local row_security = off")
            referrers = [(t, set(i), tuple(c)) for t, i, c in conn.execute(
                REFERRERS_SQL, (list(moved), list(IDENTITY_KEYS), _json(IDENTITY_KEYS)))]
            counts = {t: _counts(conn, t, c) for t, _i, c in referrers}
            ids = set().union(*counts.values()) if counts else set()
            for table, key in IDENTITY_KEYS.items():       # identities moved as data
                if _split(table)[0] in moved and _exists(conn, table):
                    ids |= _ids(conn, table, key)
            invite_table = (invites.table if invites is not None and
                            _split(invites.table)[0] in moved and
                            _exists(conn, invites.table) else None)
    except psycopg.Error as exc:
        return f"the re-invite list could not be read from the source: {_line(exc)}"
    emails, why = _emails(conn, set().union(*(i for _t, i, _c in referrers)) or
                          set(IDENTITY_KEYS), ids)
    tables = tuple(t for t, _i, _c in referrers)
    return ReinviteList(
        tables, tuple(Invitee(i, emails.get(i), tuple(counts[t].get(i, 0) for t in tables))
                      for i in sorted(ids)), why, invite_table)


def _counts(conn: psycopg.Connection[Any], table: str, columns: tuple[str, ...]
            ) -> dict[str, int]:
    """Per identity, the rows of `table` that refer to it (a row referring twice counts once)."""
    query = sql.SQL("select r.id, count(*) from {} t cross join lateral (select distinct v "
                    "from unnest(array[{}]) v) as r (id) where r.id is not null group by 1"
                    ).format(_name(table), sql.SQL(", ").join(
                        sql.SQL("t.{}::text").format(sql.Identifier(c)) for c in columns))
    return {str(i): int(n) for i, n in conn.execute(query)}


def _ids(conn: psycopg.Connection[Any], table: str, key: str) -> set[str]:
    query = sql.SQL("select {}::text from {}").format(sql.Identifier(key), _name(table))
    return {str(r[0]) for r in conn.execute(query)}


def _emails(conn: psycopg.Connection[Any], tables: set[str], ids: set[str]
            ) -> tuple[dict[str, str], str | None]:
    """E-mails by id from the source's identity tables, or why there are none."""
    found: dict[str, str] = {}
    for table in sorted(tables):
        key = IDENTITY_KEYS[table]
        try:
            with conn.transaction():
                query = sql.SQL("select {}::text, {}::text from {} where {}::text = any(%s)"
                                ).format(sql.Identifier(key), sql.Identifier(EMAIL_COLUMN),
                                         _name(table), sql.Identifier(key))
                found.update({str(i): str(e) for i, e in conn.execute(query, (sorted(ids),))
                              if e is not None})
        except psycopg.Error as exc:
            return {}, (f"no e-mail in the re-invite list: the source cannot read "
                        f"{table}.{EMAIL_COLUMN} ({_line(exc)})")
    return found, None


def write_reinvites(found: ReinviteList | str, folder: Path, invites: ExitInvites | None,
                    say: Callable[[str], None]) -> list[str]:
    """Write the list (and the invitations' SQL) into `folder`, mode 0600; their paths. What
    is missing is said in one line each."""
    if isinstance(found, str):
        say(found)
        return []
    if not found.tables and not found.invitees:
        say("no moved table refers to an identity: no re-invite list")
        return []
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "email", *found.tables])
    writer.writerows([i.id, i.email or "", *i.counts] for i in found.invitees)
    path = folder / f"reinvites-{stamp}.csv"
    write_atomic(path, out.getvalue(), mode=MODE)
    written = [str(path)]
    if found.emails:
        say(found.emails)
    if invites is not None:
        why = _no_invitations(found, invites)
        if why:
            say(why)
        else:
            sql_path = folder / f"reinvites-{stamp}.sql"
            write_atomic(sql_path, invite_sql(found, invites), mode=MODE)
            written.append(str(sql_path))
    return written


def _no_invitations(found: ReinviteList, invites: ExitInvites) -> str | None:
    if found.invite_table is None:
        return (f"no invitations: exit_invites names {invites.table}, which is not among the "
                f"moved tables")
    if found.emails:
        return "no invitations: the re-invite list has no e-mail"
    return None


def invite_sql(found: ReinviteList, invites: ExitInvites) -> str:
    """One INSERT per identity with an e-mail into the configured invitation table: the
    e-mail into its column, the other configured columns from their SQL expressions (which may
    use invitee.id, as text, and invitee.email)."""
    head = sql.SQL("insert into {} ({}) select {} from (values ").format(
        _name(invites.table),
        sql.SQL(", ").join(map(sql.Identifier, [invites.email, *invites.values])),
        sql.SQL(", ").join([sql.SQL("invitee.email"),
                            *(sql.SQL(v) for v in invites.values.values())])).as_string(None)
    return "".join(f"{head}({_lit(i.id)}, {_lit(i.email)})) as invitee (id, email);\n"
                   for i in found.invitees if i.email)


def _exists(conn: psycopg.Connection[Any], table: str) -> bool:
    row = conn.execute("select to_regclass(%s) is not null",
                       (_name(table).as_string(None),)).fetchone()
    return bool(row and row[0])


def _name(table: str) -> sql.Identifier:
    """A "schema.table" name, as format('%I.%I') or the configuration writes it."""
    return sql.Identifier(*_split(table))


def _split(table: str) -> tuple[str, str]:
    reader = csv.reader([table], delimiter=".", quotechar='"')
    parts = next(reader)
    if len(parts) != 2:
        raise ValueError(f"expected schema.table, got {table!r}")
    return parts[0], parts[1]


def _json(value: dict[str, str]) -> str:
    return json.dumps(value)


def _lit(text: str | None) -> str:
    return sql.Literal(text).as_string(None)


def _line(exc: psycopg.Error) -> str:
    return " ".join(str(exc).split())
