"""`spectral dr blast-radius | find-damage | salvage`: the incident tools the playbooks use."""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from rich.console import Console

from spectral.cli.state import state
from spectral.errors import UsageError


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
    from spectral.providers.local.provider import LocalProvider
    from spectral.recovery_target import parse_time
    from spectral.target import local_environment, open_target

    st = state(ctx)
    name, env = st.config.environment(st.env)
    with open_target(st.config, name) as target, connect(target.conninfo) as conn:
        result = blast_radius(conn, role)
        if start is not None and env.managed_cluster:
            provider = LocalProvider(local_environment(st.config, name))
            provider.flush_archive()
            result.transactions = provider.commits_between(
                parse_time(start), parse_time(end) if end else datetime.now(UTC))

    def human(c: Console) -> None:
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

    st.emit(result.to_json(), human)


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
    from spectral.providers.local.provider import LocalProvider
    from spectral.recovery_target import parse_time
    from spectral.target import local_environment

    st = state(ctx)
    bad = [o for o in op if o not in ("delete", "update", "truncate", "drop")]
    if bad:
        raise UsageError(f"--op {bad[0]!r}: expected delete, update, truncate or drop")
    name, _env = st.config.environment(st.env)
    provider = LocalProvider(local_environment(st.config, name))
    with provider.local.session() as cluster, connect(cluster.conninfo()) as conn:
        found = find_damage(provider, conn, _table(table),
                            parse_time(since) if since else None, set(op) or None)

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
    from spectral.ledger import EntryKind, Ledger
    from spectral.playbooks.salvage import salvage
    from spectral.providers.local.provider import LocalProvider
    from spectral.target import local_environment

    st = state(ctx)
    name, _env = st.config.environment(st.env)
    provider = LocalProvider(local_environment(st.config, name))
    with provider.local.session() as cluster:
        plan = salvage(provider, cluster.conninfo(), _table(table), before_xid, dry_run=True,
                       revert_updates=revert_updates)
        details = [f"re-insert {len(plan.restored_rows)} row(s) deleted by {before_xid}",
                   f"revert {len(plan.reverted_rows)} row(s) it updated",
                   *[f"conflict: {c}" for c in plan.conflicts]]
        result = plan
        if not dry_run and (plan.restored_rows or plan.reverted_rows):
            if not CliConfirmer(yes, st.err).confirm(f"Write these into {table}?", details):
                raise UsageError("salvage not confirmed; nothing was written")
            result = salvage(provider, cluster.conninfo(), table, before_xid,
                             revert_updates=revert_updates)
    if not dry_run:
        Ledger(st.config.state_dir(name) / "evidence").append(EntryKind.INCIDENT, name, {
            "playbook": "self-inflicted", "summary": f"salvaged {len(result.restored_rows)} "
            f"row(s) of {table} deleted by transaction {before_xid}",
            **{k: v for k, v in result.to_json().items() if k != "rows"}})   # no row data
    st.emit(result.to_json(), lambda c: c.print(
        f"{'would re-insert' if dry_run else 're-inserted'} {len(result.restored_rows)} row(s), "
        f"{'would revert' if dry_run else 'reverted'} {len(result.reverted_rows)}; "
        f"{len(result.conflicts)} conflict(s) left as they are"
        + "".join(f"\n  conflict: {x}" for x in result.conflicts)))


def register(app: typer.Typer) -> None:
    app.command("blast-radius")(blast_radius_cmd)
    app.command("find-damage")(find_damage_cmd)
    app.command("salvage")(salvage_cmd)
