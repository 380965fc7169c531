"""`spectral dr blast-radius | find-damage | salvage`: the incident tools the playbooks use."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from spectral.cli.state import state
from spectral.errors import UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from spectral.playbooks.blast import BlastRadius


def blast_radius_cmd(ctx: typer.Context,
                     role: str = typer.Option(..., "--role", help="The compromised role."),
                     start: str | None = typer.Option(None, "--from", help="When the credential "
                                                      "became live (ISO time)."),
                     end: str | None = typer.Option(None, "--to", help="When it was rotated "
                                                    "(ISO time; default now).")) -> None:
    """For the compromised-credential playbook: everything the role could reach (privileges
    through every level of membership, SUPERUSER / BYPASSRLS / REPLICATION / CREATEROLE, owned
    objects, RLS policies that apply to it, default privileges) and, with --from, the
    transactions committed while it was live (candidates for a PITR target or a salvage)."""
    from spectral.pg.conn import connect
    from spectral.playbooks.blast import blast_radius
    from spectral.recovery_target import parse_time

    st = state(ctx)
    environment = st.environment()
    lo = parse_time(start, "--from") if start else None
    hi = parse_time(end, "--to") if end else datetime.now(UTC)
    with environment.database() as dsn, connect(dsn) as conn:
        result = blast_radius(conn, role)
        archive = environment.provider.wal_archive() if lo is not None else None
        if lo is not None and archive is not None:
            archive.flush()
            result.transactions = archive.commits_between(lo, hi)

    st.emit(result.to_json(), lambda c: _print_blast(c, role, result))


def _print_blast(c: Console, role: str, result: BlastRadius) -> None:
    a = result.attributes
    flags = [k for k in ("superuser", "bypassrls", "replication", "createrole", "createdb",
                         "login") if a[k]]
    c.print(f"[bold]{role}[/]: {', '.join(flags) or 'no special attributes'}")
    for w in result.warnings:
        c.print(f"  [bold red]![/] {w}")
    for m in result.memberships:
        c.print(f"  member of {m['role']} (via {m['via']})")
    for obj, privs in result.tables.items():
        c.print(f"  table {obj}: {', '.join(privs)}")
    for obj, privs in result.columns.items():
        c.print(f"  columns of {obj}: {'; '.join(privs)}")
    for obj, privs in result.sequences.items():
        c.print(f"  sequence {obj}: {', '.join(privs)}")
    for o in result.owned:
        c.print(f"  owns (through {o['owner']}) {o['object']}: every privilege")
    for p in result.policies:
        c.print(f"  RLS policy {p['table']}.{p['policy']} applies ({p['command']})")
    for d in result.default_privileges:
        c.print(f"  default privilege: {d['privilege']} on future {d['objtype']} in "
                f"{d['schema']} (granted by {d['grantor']})")
    definers = [f["function"] for f in result.functions if f["security_definer"]]
    c.print(f"  can execute {len(result.functions)} function(s)"
            + (f"; security definer: {', '.join(definers)}" if definers else ""))
    if result.transactions:
        c.print(f"  {len(result.transactions)} transaction(s) in the window:")
        for t in result.transactions[:50]:
            c.print(f"    xid {t['xid']} at {t['time']} (LSN {t['lsn']}): "
                    f"{t['target_just_before']}")


TABLE_RE = r"^[a-z_][a-z0-9_$]*\.[a-z_][a-z0-9_$]*$"


def _table(name: str) -> str:
    import re

    if not re.match(TABLE_RE, name):
        raise UsageError(f"--table {name!r}: expected schema.table")
    return name


def find_damage_cmd(ctx: typer.Context,
                    table: str = typer.Option(..., "--table", help="schema.table"),
                    since: str | None = typer.Option(None, "--since", help="ISO time."),
                    op: list[str] = typer.Option([], "--op", help="delete, update, truncate or "
                                                 "drop (repeatable; default all).")) -> None:
    """Read the WAL and list the transactions that deleted, updated or truncated the table, each
    with its commit time, rows touched and the exact target just before it."""
    from spectral.pg.conn import connect
    from spectral.playbooks.damage import find_damage
    from spectral.providers.capabilities import archive_of
    from spectral.recovery_target import parse_time

    st = state(ctx)
    bad = [o for o in op if o not in ("delete", "update", "truncate", "drop")]
    if bad:
        raise UsageError(f"--op {bad[0]!r}: expected delete, update, truncate or drop")
    when = parse_time(since, "--since") if since else None
    provider = st.environment().provider
    archive = archive_of(provider, "spectral dr find-damage")
    with provider.source() as dsn, connect(dsn) as conn:
        found = find_damage(archive, conn, _table(table), when, set(op) or None)

    def human(c: Console) -> None:
        if not found:
            c.print(f"no transaction deleted, updated or truncated {table} in the WAL archive")
        for d in found:
            rows = "every row" if d.rows < 0 else f"{d.rows} row(s)"
            c.print(f"xid {d.xid}: {d.op} of {rows} at {d.commit_time} (commit LSN "
                    f"{d.commit_lsn}); just before it: {d.target}")

    st.emit([d.to_json() for d in found], human)


def salvage_cmd(ctx: typer.Context,
                table: str = typer.Option(..., "--table", help="schema.table"),
                before_xid: int = typer.Option(..., "--before-xid", help="The damaging "
                                               "transaction (spectral dr find-damage)."),
                revert_updates: bool = typer.Option(False, "--revert-updates", help="Also put "
                                                    "back the values it overwrote."),
                dry_run: bool = typer.Option(False, "--dry-run", help="Show the rows, write "
                                             "nothing."),
                yes: bool = typer.Option(False, "--yes", "-y", help="Write without asking.")
                ) -> None:
    """Re-insert exactly the rows one transaction deleted (and with --revert-updates restore the
    values it overwrote), leaving every later write as it is (reported as conflicts). Restores a
    side instance to just before the transaction and always tears it down."""
    from spectral.cli.state import CliConfirmer
    from spectral.playbooks.salvage import salvage_and_record

    st = state(ctx)
    result = salvage_and_record(st.environment(), _table(table), before_xid,
                                CliConfirmer(yes, st.err), dry_run=dry_run,
                                revert_updates=revert_updates)
    st.emit(result.to_json(), lambda c: c.print(
        f"{'would re-insert' if dry_run else 're-inserted'} {len(result.restored_rows)} row(s), "
        f"{'would revert' if dry_run else 'reverted'} {len(result.reverted_rows)}; "
        f"{len(result.conflicts)} conflict(s) left as they are"
        + (f"; {len(result.already_back)} already back (an earlier run put them back)"
           if result.already_back else "")
        + "".join(f"\n  conflict: {x}" for x in result.conflicts)))


def register(app: typer.Typer) -> None:
    app.command("blast-radius")(blast_radius_cmd)
    app.command("find-damage")(find_damage_cmd)
    app.command("salvage")(salvage_cmd)
