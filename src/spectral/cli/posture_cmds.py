"""`spectral dr sample | triggers | activate-pitr | checklist first-partner | incident`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from spectral.cli.state import CliConfirmer, state
from spectral.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from rich.console import Console

checklist_app = typer.Typer(no_args_is_help=True, help="The runbook's checklists.")
incident_app = typer.Typer(no_args_is_help=True, help="Incidents in the ledger.")


def sample_cmd(ctx: typer.Context) -> None:
    """Record the environment's change counters (per-table inserts, updates, deletes, live rows,
    database size, WAL bytes) in the evidence store. Meant to run daily from cron."""
    from spectral.pg.conn import connect
    from spectral.posture import samples as samples_mod

    st = state(ctx)
    environment = st.environment()
    name, env = environment.name, environment.config
    with environment.database() as dsn, connect(dsn) as conn:
        sample = samples_mod.take_sample(conn, env.schemas)
    samples_mod.record(st.config.state_dir(name), sample)
    st.emit(sample.to_json(), lambda c: c.print(
        f"{name}: sampled {sample.changed_total:,} changes so far, {sample.live_rows:,} live "
        f"rows, {sample.db_bytes / 1e6:.1f} MB, WAL at {sample.wal_bytes:,} bytes"))


def triggers_cmd(ctx: typer.Context) -> None:
    """Evaluate the activation triggers with their evidence. Exit 1 when any has fired and the
    tier is below pitr."""
    from spectral.ledger.open import open_ledger
    from spectral.pg.conn import connect
    from spectral.posture import samples as samples_mod
    from spectral.posture.triggers import evaluate

    st = state(ctx)
    environment = st.environment()
    name, env = environment.name, environment.config
    entries = open_ledger(st.config, name).entries()
    samples = samples_mod.read(st.config.state_dir(name))
    with environment.database() as dsn, connect(dsn) as conn:
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
                                             "(recorded in the ledger)."),
                 pitr_addon: str | None = typer.Option(None, "--pitr-addon", help="Supabase: "
                                                       "apply this PITR add-on (pitr_7, pitr_14, "
                                                       "pitr_28) when PITR is off; billed, so "
                                                       "it asks first."),
                 yes: bool = typer.Option(False, "--yes", "-y", help="Confirm the add-on "
                                          "without asking.")) -> None:
    """The runbook's activation: check backups (1) and PITR (2) are really in place, set the
    tier to pitr in the configuration keeping its comments (3), make a functional drill due
    within 30 days (4); recorded in the ledger."""
    from spectral.posture.activate import activate

    st = state(ctx)
    environment = st.environment()
    name = environment.name
    result = activate(environment, trigger, addon=pitr_addon,
                      operator=CliConfirmer(yes, st.err),
                      report=lambda m: st.err.print(f"activate: {m}"))

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
    from spectral.posture.checklist import first_partner
    from spectral.rules.layout import check_partner

    st = state(ctx)
    check_partner(partner)
    environment = st.environment()
    with environment.database() as dsn:
        items = first_partner(environment, dsn, partner, out)

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
    from spectral.ledger.open import open_ledger
    from spectral.ledger.payloads import IncidentRecord
    from spectral.playbooks.catalog import outline

    st = state(ctx)
    outline(playbook_name)
    if not summary.strip():
        raise UsageError("--summary must say what happened")
    name, _env = st.config.environment(st.env)
    record = IncidentRecord(playbook_name, summary, near_miss, pitr_covered)
    entry = open_ledger(st.config, name).record(name, record)
    st.emit({"seq": entry.seq, **entry.data},
            lambda c: c.print(f"recorded incident #{entry.seq}: {summary}"))


def register(app: typer.Typer) -> None:
    app.command("sample")(sample_cmd)
    app.command("triggers")(triggers_cmd)
    app.command("activate-pitr")(activate_cmd)
    app.add_typer(checklist_app, name="checklist")
    app.add_typer(incident_app, name="incident")


__all__ = ["register"]
