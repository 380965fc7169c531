"""`spectral dr playbook list | show NAME | run NAME`."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING

import typer

from spectral.cli.state import CliConfirmer, state
from spectral.errors import ExitCode

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(no_args_is_help=True, help="The runbook's five restore playbooks.")


@app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """The playbooks in the team's words (its runbook file), with the environment's tier
    deciding which version applies."""
    from spectral.playbooks.catalog import playbooks
    from spectral.runbook.load import load_runbook

    st = state(ctx)
    book = load_runbook(st.config)
    _name, env = st.config.environment(st.env)
    data = [{"name": p.name, "title": p.title, "steps": len(p.steps(env.posture))}
            for p in playbooks(book)]
    def human(c: Console) -> None:
        for p in data:
            c.print(f"{p['name']:<24} {p['title']}")

    st.emit(data, human)


@app.command("show")
def show_cmd(ctx: typer.Context, name: str = typer.Argument(..., help="Playbook name.")) -> None:
    """A playbook's steps for the environment's posture tier, in the team's words (its runbook
    file); --json gives each step's key (a manual step's key words it in the file)."""
    from spectral.config.models import Posture
    from spectral.playbooks.catalog import playbook
    from spectral.runbook.load import load_runbook

    st = state(ctx)
    book = load_runbook(st.config)
    _env_name, env = st.config.environment(st.env)
    pb = playbook(name, book)
    steps = pb.steps(env.posture)

    def human(c: Console) -> None:
        c.print(f"[bold]{pb.title}[/] at tier {env.posture.value}"
                + (" (recovery is re-seed)" if env.posture is Posture.ALPHA else ""))
        for i, s in enumerate(steps, start=1):
            c.print(f"  {i}. {s.text}" + (" (automated)" if s.automated else " (manual)"))

    st.emit({"name": name, "posture": env.posture.value,
             "steps": [{"key": s.key, "text": s.text, "automated": s.automated}
                       for s in steps]}, human)


@app.command("run")
def run_cmd(ctx: typer.Context, name: str = typer.Argument(..., help="Playbook name."),
            dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan with the "
                                         "concrete targets; change nothing."),
            table: str | None = typer.Option(None, "--table", help="The damaged table."),
            target_xid: str | None = typer.Option(None, "--target-xid", help="Restore to just "
                                                  "before this transaction."),
            target_time: str | None = typer.Option(None, "--target-time", help="Restore to this "
                                                   "time (compromised credential)."),
            role: str | None = typer.Option(None, "--role", help="The compromised role."),
            operator: str | None = typer.Option(None, "--operator", help="Who runs it "
                                                "(default: the login name)."),
            to: str | None = typer.Option(None, "--to", help="provider-failure: the PostgreSQL "
                                          "elsewhere (an environment, a DSN or a secret "
                                          "reference; default: exit_target)."),
            yes: bool = typer.Option(False, "--yes", "-y", help="Confirm every step.")) -> None:
    """Run a playbook: automated steps through the provider, manual steps shown and confirmed;
    every step's start, end, outcome and operator recorded in one incident entry."""
    from spectral.playbooks.catalog import outline
    from spectral.playbooks.plan import Options, Plan
    from spectral.playbooks.runner import RunOutcome, require_yes, run_playbook
    from spectral.recovery_target import check_xid, parse_time
    from spectral.runbook.load import load_runbook

    st = state(ctx)
    outline(name)
    book = load_runbook(st.config)          # a bad runbook file stops before anything starts
    report = (lambda m: st.err.print(m)) if not st.json else (lambda _m: None)
    environment = st.environment()
    env_name, env = environment.name, environment.config
    opts = Options(table, int(check_xid(target_xid)) if target_xid is not None else None,
                   parse_time(target_time) if target_time is not None else None, role,
                   operator or getpass.getuser(), to)
    confirmer = CliConfirmer(yes, st.err)
    if not dry_run:
        require_yes(confirmer, name)
    with environment.database() as live:
        plan = Plan(environment, live, confirmer, opts, report, book)
        result = run_playbook(plan, name, dry_run=dry_run, report=report)

    def human(c: Console) -> None:
        c.print(f"playbook {name} on {env_name} ({env.posture.value}): {result.outcome}"
                + (" (dry run: nothing changed)" if dry_run else ""))
        for s in result.steps:
            c.print(f"  {s.number}. [{s.outcome}] {s.text}" + (f": {s.detail}" if s.detail
                                                                 else ""))

    st.emit({**result.to_json(), "reinvite_files": plan.reinvite_files}, human)
    raise typer.Exit(ExitCode.OK if result.outcome in (RunOutcome.DONE, RunOutcome.PLANNED)
                     else ExitCode.CHECK_FAILED)
