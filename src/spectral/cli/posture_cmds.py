"""`spectral dr sample | triggers | activate-pitr | checklist first-partner | incident`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

from spectral.cli.state import state
from spectral.errors import ExitCode, UsageError
from spectral.ledger import EntryKind, Ledger
from spectral.pg.conn import connect
from spectral.playbooks.catalog import playbook
from spectral.posture import samples as samples_mod
from spectral.posture.activate import activate
from spectral.posture.checklist import first_partner
from spectral.posture.triggers import TriggerState, evaluate
from spectral.rules.layout import check_partner
from spectral.target import local_environment, open_target

checklist_app = typer.Typer(no_args_is_help=True, help="The runbook's checklists.")
incident_app = typer.Typer(no_args_is_help=True, help="Incidents in the ledger.")


def sample_cmd(ctx: typer.Context) -> None:
    """Record the environment's change counters (per-table inserts, updates, deletes, live rows,
    database size, WAL bytes) in the evidence store. Meant to run daily from cron."""
    st = state(ctx)
    name, env = st.config.environment(st.env)
    with open_target(st.config, name) as target, connect(target.conninfo) as conn:
        sample = samples_mod.take_sample(conn, env.schemas)
    samples_mod.record(st.config.state_dir(name), sample)
    st.emit(sample.to_json(), lambda c: c.print(
        f"{name}: sampled {sample.changed_total:,} changes so far, {sample.live_rows:,} live "
        f"rows, {sample.db_bytes / 1e6:.1f} MB, WAL at {sample.wal_bytes:,} bytes"))


def triggers_cmd(ctx: typer.Context) -> None:
    """Evaluate ADR-040 D5's activation triggers with their evidence. Exit 1 when any has fired
    and the tier is below pitr."""
    st = state(ctx)
    name, env = st.config.environment(st.env)
    entries = Ledger(st.config.state_dir(name) / "evidence").entries()
    samples = samples_mod.read(st.config.state_dir(name))
    with open_target(st.config, name) as target, connect(target.conninfo) as conn:
        found, days, raise_now = evaluate(env, conn, entries, samples, datetime.now(UTC).date())

    def human(c: Console) -> None:
        for t in found:
            mark = {"fired": "[bold red]FIRED[/]", "not fired": "not fired"}.get(t.state.value,
                                                                                 t.state.value)
            c.print(f"{t.name}: {mark}")
            for line in t.evidence:
                c.print(f"    {line}")
        if days:
            c.print("daily change (rows changed / live rows; WAL bytes):")
            for d in days:
                c.print(f"    {d.day}  " + ("gap" if d.churn is None else
                                             f"{d.churn * 100:5.1f}%  {d.wal_bytes:,}")
                        + (f"  ({d.note})" if d.note else ""))
        if raise_now:
            c.print(f"[bold]raise the posture: tier is {env.posture.value}[/] "
                    f"(spectral dr activate-pitr)")

    st.emit({"posture": env.posture.value, "must_raise": raise_now,
             "triggers": [t.to_json() for t in found],
             "days": [{"day": d.day.isoformat(), "churn": d.churn, "changed": d.changed,
                       "live": d.live, "wal_bytes": d.wal_bytes, "note": d.note} for d in days]},
            human)
    raise typer.Exit(ExitCode.CHECK_FAILED if raise_now else ExitCode.OK)


def activate_cmd(ctx: typer.Context,
                 trigger: str = typer.Option("manual", "--trigger", help="Which trigger fired "
                                             "(recorded in the ledger).")) -> None:
    """The runbook's activation: check backups (1) and PITR (2) are really in place, set the
    tier to pitr in the configuration keeping its comments (3), make a functional drill due
    within 30 days (4); recorded in the ledger."""
    st = state(ctx)
    name, env = st.config.environment(st.env)
    local = local_environment(st.config, name) if env.managed_cluster else None
    result = activate(st.config, name, local, trigger)

    def human(c: Console) -> None:
        for s in result.steps:
            c.print(f"  {s.number}. {s.text}: {'done' if s.done else 'NOT DONE'} ({s.evidence})")
        c.print(f"{name}: posture is now pitr; a functional drill is due within 30 days")

    st.emit({"environment": name, "steps": [s.to_json() for s in result.steps]}, human)


@checklist_app.command("first-partner")
def first_partner_cmd(ctx: typer.Context,
                      partner: str = typer.Option(..., "--partner", help="Partner slug."),
                      out: Path = typer.Option(Path("data/rules"), "--out",
                                               help="Where the corpora are exported.")) -> None:
    """The first-partner onboarding DR checklist, each item checked. Exit 1 while any is open."""
    st = state(ctx)
    check_partner(partner)
    name, env = st.config.environment(st.env)
    local = local_environment(st.config, name)
    with open_target(st.config, name) as target:
        items = first_partner(env, local, target.conninfo, partner, out)

    def human(c: Console) -> None:
        for i in items:
            c.print(f"[{'x' if i.done else ' '}] {i.text}\n      {i.evidence}")

    st.emit([i.to_json() for i in items], human)
    raise typer.Exit(ExitCode.OK if all(i.done for i in items) else ExitCode.CHECK_FAILED)


@incident_app.command("record")
def incident_record_cmd(ctx: typer.Context,
                        playbook_name: str = typer.Option(..., "--playbook", help="Which "
                                                          "playbook the incident belongs to."),
                        summary: str = typer.Option(..., "--summary", help="What happened."),
                        near_miss: bool = typer.Option(False, "--near-miss", help="It almost "
                                                       "happened."),
                        pitr_covered: bool = typer.Option(False, "--pitr-covered",
                                                          help="PITR would have covered it.")
                        ) -> None:
    """Record an incident (or near-miss) in the ledger: the runbook history and the activation
    triggers read it."""
    st = state(ctx)
    playbook(playbook_name)
    if not summary.strip():
        raise UsageError("--summary must say what happened")
    name, _env = st.config.environment(st.env)
    entry = Ledger(st.config.state_dir(name) / "evidence").append(
        EntryKind.INCIDENT, name, {"playbook": playbook_name, "summary": summary,
                                   "near_miss": near_miss, "pitr_covered": pitr_covered})
    st.emit({"seq": entry.seq, **entry.data},
            lambda c: c.print(f"recorded incident #{entry.seq}: {summary}"))


def register(app: typer.Typer) -> None:
    app.command("sample")(sample_cmd)
    app.command("triggers")(triggers_cmd)
    app.command("activate-pitr")(activate_cmd)
    app.add_typer(checklist_app, name="checklist")
    app.add_typer(incident_app, name="incident")
    app.command("blast-radius")(blast_radius_cmd)
    app.command("find-damage")(find_damage_cmd)
    app.command("salvage")(salvage_cmd)


__all__ = ["TriggerState", "register"]


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
    from spectral.playbooks.blast import blast_radius
    from spectral.providers.local.provider import LocalProvider
    from spectral.providers.local.targets import parse_time

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
    from spectral.playbooks.damage import find_damage
    from spectral.providers.local.provider import LocalProvider
    from spectral.providers.local.targets import parse_time

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
    from spectral.playbooks.salvage import salvage
    from spectral.providers.local.provider import LocalProvider

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
