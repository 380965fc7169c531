"""What the exit writes into the target, each statement with its undo, and the intent record
that lets the next run take back what a killed exit wrote.

The undo stack takes the writes back on any error or interrupt the process lives through; a
kill -9 (or a lost machine) leaves them in the target, and the target is then "not empty" to
every later exit. So before each write the statement that undoes it is appended to a record in
the environment's state directory, written and fsynced first, and the record is removed once the
exit is done (or undone). Every undo statement is idempotent (`drop ... if exists`), so a record
whose write never happened, or an undo that was itself interrupted, is safe to replay.

The next exit into the same target replays the record's undo (newest first) before it looks at
the target; an exit into another target is refused with the exact command that undoes it by
hand, since the half-written target's password is not on disk."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from spectral.durable import fsync_dir, write_atomic
from spectral.errors import CouldNotVerify, RefusedError
from spectral.exit.portability import Item
from spectral.exit.shims import SHIMS
from spectral.pg.conn import connect

VERSION = 1
RECORD = "intent.json"


def target_parts(dsn: str) -> dict[str, str]:
    """Where the target is, without its password: what the record keeps of it."""
    parts = conninfo_to_dict(dsn)
    return {k: str(parts[k]) for k in ("host", "port", "user", "dbname") if parts.get(k)}


def describe_parts(parts: dict[str, Any]) -> str:
    return (f"{parts.get('user', '?')}@{parts.get('host', 'localhost')}:"
            f"{parts.get('port', 5432)}/{parts.get('dbname', '?')}")


@dataclass
class Journal:
    """The intent record of one exit run: the target, the work folder, the undo statements."""

    path: Path
    target: dict[str, str]
    work: Path
    undo: list[str] = field(default_factory=list)

    @classmethod
    def begin(cls, folder: Path, target: dict[str, str], work: Path) -> Journal:
        journal = cls(folder / RECORD, target, work)
        journal._write()
        return journal

    def will(self, statement: str) -> None:
        """Record the undo of a write about to be made (durably, before it is made)."""
        self.undo.append(statement)
        self._write()

    def finish(self) -> None:
        """The exit is done or undone: nothing is left to take back."""
        self.path.unlink(missing_ok=True)
        fsync_dir(self.path.parent)

    def _write(self) -> None:
        pid = os.getpid()
        write_atomic(self.path, json.dumps({
            "version": VERSION, "pid": pid, "pid_start": _started(pid),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "target": self.target, "work": str(self.work), "undo": self.undo}) + "\n", 0o600)


def recover(folder: Path, target_dsn: str, say: Callable[[str], None]) -> list[str]:
    """Take back what an interrupted exit wrote into this target (the statements run, newest
    first); refuse, with the command that undoes it by hand, when it wrote elsewhere."""
    path = folder / RECORD
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError):
        raise CouldNotVerify(f"the exit's intent record {path} is unreadable; look at the "
                             f"target it names, then remove it") from None
    old, undo = dict(record.get("target") or {}), [str(s) for s in record.get("undo") or []]
    where = describe_parts(old)
    if _alive(record.get("pid"), record.get("pid_start")):
        raise RefusedError(f"another exit (pid {record.get('pid')}) is writing into {where}; "
                           f"wait for it to finish")
    if old != target_parts(target_dsn):
        raise RefusedError(
            f"an earlier exit into {where} (pid {record.get('pid')}, started "
            f"{record.get('started_at')}) was interrupted and left what it wrote there; "
            f"nothing was written", hint=f"`spectral dr exit --to <{where}>` undoes it before "
            f"moving again, or undo it by hand: {_psql(old, undo)} && rm {shlex.quote(str(path))}")
    if undo:
        say(f"an earlier exit into {where} (pid {record.get('pid')}, started "
            f"{record.get('started_at')}) was interrupted: undoing what it wrote")
    _replay(target_dsn, undo, old, say)
    _remove_work(folder, Path(str(record.get("work", ""))))
    path.unlink()
    fsync_dir(folder)
    return list(reversed(undo))


def _replay(dsn: str, undo: list[str], where: dict[str, str],
            say: Callable[[str], None]) -> None:
    for i, statement in enumerate(reversed(undo)):
        say(f"undo: {statement}")
        try:
            execute(dsn, statement)
        except psycopg.Error as exc:
            rest = list(reversed(undo))[i:]
            raise CouldNotVerify(f"undoing the interrupted exit failed at `{statement}`: "
                                 f"{str(exc).strip().splitlines()[0]}",
                                 hint=f"after fixing that: {_psql(where, list(reversed(rest)))}"
                                 ) from None


def _remove_work(folder: Path, work: Path) -> None:
    """The killed run's dump: only a folder directly inside the exit folder is removed."""
    if work.name and work.parent.resolve() == folder.resolve() and work.is_dir() \
            and not work.is_symlink():
        shutil.rmtree(work, ignore_errors=True)


def _psql(parts: dict[str, str], undo: list[str]) -> str:
    args = ["psql", "-X", "-v", "ON_ERROR_STOP=1"]
    for flag, key in (("-h", "host"), ("-p", "port"), ("-U", "user"), ("-d", "dbname")):
        if parts.get(key):
            args += [flag, parts[key]]
    script = "; ".join(reversed(undo)) or "select 1"
    return " ".join(shlex.quote(a) for a in args) + " -c " + shlex.quote(script)


def _started(pid: int) -> int | None:
    """A process's start time (clock ticks since boot, /proc/<pid>/stat field 22)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[19]) if len(fields) > 19 and fields[0] != "Z" else None


def _alive(pid: object, start: object) -> bool:
    """Whether the run that wrote the record still runs (a reused pid does not count)."""
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    now = _started(pid)
    return now is not None and (start is None or now == start)


# ---- the statements ---------------------------------------------------------------------------
def execute(dsn: str, statement: str) -> None:
    with connect(dsn) as conn:
        conn.autocommit = True
        conn.execute(statement.encode())


def schema_exists(dsn: str, schema: str) -> bool:
    with connect(dsn) as conn:
        return conn.execute("select 1 from pg_namespace where nspname = %s",
                            (schema,)).fetchone() is not None


def shim_statements(tgt: psycopg.Connection[Any], item: Item) -> list[tuple[str, str | None]]:
    """The statements that create one shim, each with its undo (None: nothing to undo)."""
    if item.kind == "role":
        return [(f"create role {ident(item.name)} nologin",
                 f"drop role if exists {ident(item.name)}")]
    if item.grant is not None:
        role, member, inherit = item.grant
        out_: list[tuple[str, str | None]] = []
        if tgt.execute("select 1 from pg_roles where rolname = %s", (member,)).fetchone() \
                is None:
            out_.append((f"create role {ident(member)} nologin"
                         f"{'' if inherit else ' noinherit'}",
                         f"drop role if exists {ident(member)}"))
        guard = " and ".join(f"exists (select 1 from pg_roles where rolname = "
                             f"{sql.Literal(n).as_string(None)})" for n in (role, member))
        out_.append((f"grant {ident(role)} to {ident(member)}",   # undone once: idempotent
                     f"do $$ begin if {guard} then revoke {ident(role)} from "
                     f"{ident(member)}; end if; end $$"))
        return out_
    if item.kind == "extension":
        schema = item.action.split(" in schema ", 1)[1].split(" ", 1)[0]
        out: list[tuple[str, str | None]] = []
        if not has_schema(tgt, schema):
            out.append((f"create schema {ident(schema)}",
                        f"drop schema if exists {ident(schema)} cascade"))
        out.append((f"create extension if not exists {ident(item.name)} with schema "
                    f"{ident(schema)}", f"drop extension if exists {ident(item.name)}"))
        return out
    assert item.shim is not None
    out = []
    if not has_schema(tgt, item.shim.schema):
        out.append((f"create schema {ident(item.shim.schema)}",
                    f"drop schema if exists {ident(item.shim.schema)} cascade"))
    out += [(s, None) for s in item.shim.create]
    return out


def ident(name: str) -> str:
    return sql.Identifier(name).as_string(None)


def has_schema(tgt: psycopg.Connection[Any], schema: str) -> bool:
    return tgt.execute("select 1 from pg_namespace where nspname = %s",
                       (schema,)).fetchone() is not None


def fill_identity_shims(source_dsn: str, target_dsn: str, schemas: tuple[str, ...],
                        moved: tuple[str, ...]) -> None:
    """Identity shims (auth.users) get exactly the ids the moved tables refer to."""
    with connect(source_dsn) as src:
        src.execute("set search_path = ''")      # names come out schema-qualified
        fks = src.execute(
            "select conrelid::regclass::text, confrelid::regclass::text, "
            "array(select attname::text from unnest(conkey) k join pg_attribute a on "
            "a.attrelid = conrelid and a.attnum = k), "
            "array(select attname::text from unnest(confkey) k join pg_attribute a on "
            "a.attrelid = confrelid and a.attnum = k) "
            "from pg_constraint where contype = 'f' "
            "and connamespace::regnamespace::text = any(%s)",
            (list(schemas),)).fetchall()
    with connect(target_dsn) as tgt:
        for table, referenced, cols, refcols in fks:
            if referenced not in SHIMS or referenced.split(".")[0] in set(moved):
                continue          # a shim only when it is one: a moved table has its rows
            tgt.execute(sql.SQL(
                "insert into {} ({}) select distinct {} from {} where {} "
                "on conflict do nothing").format(
                    sql.SQL(referenced), sql.SQL(", ").join(map(sql.Identifier, refcols)),
                    sql.SQL(", ").join(map(sql.Identifier, cols)), sql.SQL(table),
                    sql.SQL(" and ").join(sql.SQL("{} is not null").format(
                        sql.Identifier(c)) for c in cols)))
