"""`spectral dr status | cadence | tabletop | runbook render` and `spectral dr drill due`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from spectral.cli.outfile import check_writable, writing
from spectral.cli.state import AppState, state
from spectral.config.durations import format_duration
from spectral.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from datetime import datetime

    from rich.console import Console

    from spectral.drills import tabletop as tt
    from spectral.runbook.model import Runbook

runbook_app = typer.Typer(no_args_is_help=True, help="The runbook, generated from the ledger.")


def _status(st: AppState, as_of: datetime | None = None) -> dict[str, Any]:
    from spectral.drills import status as status_mod

    environment = st.environment()
    return status_mod.collect(environment.name, environment.config,
                              status_mod.facts(environment), as_of)


def _cadence_table(c: Console, items: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table("type", "cadence", "last done", "next due", "state")
    for i in items:
        state_text = i["state"] + (f": {i['detail']}" if i["detail"] else "")
        table.add_row(i["name"], i["cadence"], (i["last_done"] or "never")[:10],
                      (i["due"] or "-")[:10], state_text)
    c.print(table)


def _print_status(c: Console, info: dict[str, Any]) -> None:
    t, m = info["targets"], info["measured"]
    c.print(f"[bold]{info['environment']}[/]: posture [bold]{info['posture']}[/]")
    rpo_target = format_duration(t["rpo_seconds"]) if t["rpo_seconds"] else "re-seedable"
    c.print(f"  RPO target {rpo_target}, last measured {format_duration(m['rpo_seconds'])}")
    c.print(f"  RTO target {format_duration(t['rto_seconds'])}, last measured "
            f"{format_duration(m['rto_seconds'])}")
    last = info["last_drill"]
    c.print("  last drill: " + (f"{last['at'][:19]} {last['type']} {last['outcome'].upper()}"
                                if last else "never"))
    b = info["backup"]
    c.print(f"  newest backup: {b['newest'] or 'none'}"
            + (f", {format_duration(b['age_seconds'])} old" if b["age_seconds"] else "")
            + f" ({b['state']})")
    w = info["wal"]
    if w and "pitr_enabled" in w:
        c.print(f"  PITR: {'enabled' if w['pitr_enabled'] else 'not enabled'}"
                + (f", recoverable up to {w['window_end'][:19]}" if w["window_end"] else ""))
    else:
        c.print("  WAL: " + (f"{w['rpo_bytes']} bytes not yet in the repository"
                             f"{', streaming' if w['streaming'] else ''}" if w
                             else "server not running"))
    c.print(f"  ledger: {info['ledger']['entries']} entries, "
            f"{'intact' if info['ledger']['intact'] else 'TAMPERED'}")
    _cadence_table(c, info["cadence"])
    if info["overdue"]:
        c.print(f"[bold red]overdue:[/] {', '.join(info['overdue'])}")
        for step in info["next_steps"]:
            c.print(f"  to start: {step}")
        if not info["last_drill"] and not info["ledger"]["entries"]:
            c.print("  (a new environment: status exits 1 until these have been done once; "
                    "it is a dead-man's switch that starts armed)")


STATUS_JUNIT = typer.Option(None, "--junit", dir_okay=False, help="Also write the status as JUnit "
                            "XML to FILE (a testcase per cadence item, the daily backup and "
                            "the ledger), for CI systems.")


def _write_reports(info: dict[str, Any], prom_file: Path | None, junit: Path | None) -> None:
    """--prom-file and --junit: the same status for Prometheus and for CI systems."""
    if prom_file is not None:
        from spectral.drills import metrics

        with writing("--prom-file", prom_file):
            metrics.write_prometheus(info, prom_file)
    if junit is not None:
        from spectral.drills import junit as junit_mod

        with writing("--junit", junit):
            junit_mod.write_junit(junit, [junit_mod.status_suite(info)])


def status_cmd(ctx: typer.Context,
               prom_file: Path | None = typer.Option(None, "--prom-file", help="Also write the "
                                                     "figures in Prometheus text format (for "
                                                     "node_exporter's textfile collector; with "
                                                     "--all, every environment's, labelled)."),
               as_of: str | None = typer.Option(None, "--as-of", help="Judge what is due or "
                                                "overdue as of this time (ISO 8601), e.g. to "
                                                "see what lapses before a holiday."),
               all_environments: bool = typer.Option(False, "--all", help="Every environment "
                                                     "of the configuration in one table (exit "
                                                     "1 overdue or failed anywhere, else 3 "
                                                     "when one could not be verified)."),
               junit: Path | None = STATUS_JUNIT) -> None:
    """Tier, targets against measured RPO/RTO, last drill, what is due or overdue, backup
    freshness, WAL lag. Exit 1 when anything is overdue: run it from cron as a dead-man's
    switch. Configured webhooks are told when something becomes overdue or recovers."""
    from spectral.cli.fleet_cmds import alert_status, status_all
    from spectral.recovery_target import parse_time

    st = state(ctx)
    when = parse_time(as_of, "--as-of") if as_of else None
    check_writable("--prom-file", prom_file)
    check_writable("--junit", junit)
    if all_environments:
        if junit is not None:
            raise UsageError("--junit is for one environment; not with --all")
        status_all(st, when, prom_file)
    info = _status(st, when)
    _write_reports(info, prom_file, junit)

    st.emit(info, lambda c: _print_status(c, info))
    alert_status(st, st.environment(), info)
    raise typer.Exit(ExitCode.CHECK_FAILED if info["overdue"] else ExitCode.OK)


def cadence_cmd(ctx: typer.Context) -> None:
    """The drill cadence: last done and next due for each type of drill (exit 1 if overdue)."""
    st = state(ctx)
    info = _status(st)
    st.emit(info["cadence"], lambda c: _cadence_table(c, info["cadence"]))
    overdue = any(i["state"] == "overdue" for i in info["cadence"])
    raise typer.Exit(ExitCode.CHECK_FAILED if overdue else ExitCode.OK)


def due_cmd(ctx: typer.Context,
            all_environments: bool = typer.Option(False, "--all", help="Every environment: the "
                                                  "drills their cadence says are due "
                                                  "(functional, post-migration); exit 1 if "
                                                  "any."),
            run: bool = typer.Option(False, "--run", help="With --all: run each due drill "
                                     "(where no person is needed), record it, alert; exit "
                                     "the worst.")) -> None:
    """Whether a post-migration drill is pending: a migration touched more than one protected
    schema since the last drill (compared from the schemas' fingerprints). Exit 1 if pending.
    With --all, every environment's due drills; with --all --run, drill them."""
    from spectral.drills import status as status_mod

    st = state(ctx)
    if run and not all_environments:
        raise UsageError("--run goes with --all (one environment: spectral dr drill "
                         "functional)")
    if all_environments:
        from spectral.cli.fleet_cmds import drill_due_all

        drill_due_all(st, run)
    environment = st.environment()
    with environment.provider.source():   # the schemas need the server
        info = status_mod.collect(environment.name, environment.config,
                                  status_mod.facts(environment))
    item = next(i for i in info["cadence"] if i["name"] == "Post-migration drill")
    st.emit(item, lambda c: c.print(f"post-migration drill: {item['state']} ({item['detail']})"))
    raise typer.Exit(ExitCode.CHECK_FAILED if item["state"] == "overdue" else ExitCode.OK)


def tabletop_cmd(ctx: typer.Context,
                 scenario: str | None = typer.Option(None, "--scenario", help="Playbook: "
                                                     "self-inflicted, regional-outage, "
                                                     "provider-failure, compromised-credential, "
                                                     "schema-drop (default: random)."),
                 answers: Path | None = typer.Option(None, "--answers", help="Run "
                                                     "non-interactively from this TOML/JSON "
                                                     "file.")) -> None:
    """The monthly tabletop review: walk one playbook scenario step by step; record
    participants, notes, findings and action items in the ledger."""
    from spectral.drills import tabletop as tt
    from spectral.ledger.open import open_ledger
    from spectral.runbook.load import load_runbook

    st = state(ctx)
    book = load_runbook(st.config)
    name, env = st.config.environment(st.env)
    ledger = open_ledger(st.config, name)

    def show(i: int, n: int, text: str, automated: bool) -> None:
        if not st.json:
            st.err.print(f"  step {i}/{n}: {text}" + (" (automated)" if automated else ""))

    if answers is not None:
        session = tt.from_answers(tt.load_answers(answers), env.posture, scenario, book,
                                  show)
    else:
        session = _interactive(st, env.posture, scenario, book, show)
    briefing = _exit_briefing(st) if session.scenario.name == "provider-failure" else None
    if briefing is not None and not st.json:
        st.err.print(f"  portability: {briefing['summary']}")
    entry = tt.record(ledger, name, session, briefing)
    st.emit({"seq": entry.seq, **entry.data}, lambda c: c.print(
        f"tabletop review of {session.scenario.name} recorded as ledger entry #{entry.seq}: "
        f"{len(session.findings)} finding(s), {len(session.action_items)} action item(s)"))


def _report_facts(st: AppState) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """What `dr status` knows, and the recoverable window, for the report (None when the
    environment cannot say: a DSN-only environment, an unreachable API)."""
    from spectral.drills import status as status_mod
    from spectral.errors import SpectralError

    try:
        environment = st.environment()
        info = status_mod.collect(environment.name, environment.config,
                                  status_mod.facts(environment))
    except SpectralError:
        return None, None
    try:
        w = environment.provider.window()
        window = {"earliest": w.earliest_time.isoformat(timespec="seconds")
                  if w.earliest_time else None,
                  "latest": w.latest_time.isoformat(timespec="seconds")
                  if w.latest_time else None}
    except SpectralError:
        window = None
    return info, window


def _exit_briefing(st: AppState) -> dict[str, Any]:
    """The portability report, run now: what the provider-failure exit would meet today."""
    from spectral.errors import SpectralError
    from spectral.posture.checklist import exit_planned

    try:
        environment = st.environment()
        with environment.database() as dsn:
            item = exit_planned(environment, dsn)
    except SpectralError as exc:
        return {"summary": f"not run: {exc.message}", "done": False}
    return {"summary": item.evidence, "done": item.done}


def _interactive(st: AppState, posture: Any, scenario: str | None, book: Runbook,
                 show: tt.Show) -> tt.Tabletop:
    from spectral.drills import tabletop as tt

    if not sys.stdin.isatty():
        raise UsageError("a tabletop review needs a terminal, or --answers FILE")
    chosen = tt.choose(scenario, book)
    st.err.print(f"[bold]Tabletop review: {chosen.title}[/] (tier {posture.value})")
    people = [p.strip() for p in typer.prompt("Participants (comma-separated)", err=True)
              .split(",") if p.strip()]
    if not people:
        raise UsageError("a tabletop review needs at least one participant")
    notes = []
    steps = chosen.steps(posture)
    for i, step in enumerate(steps, start=1):
        show(i, len(steps), step.text, step.automated)
        notes.append(typer.prompt("    notes", default="", show_default=False, err=True))
    findings = _lines("Findings (one per line, empty line to finish)")
    actions = _lines("Action items (one per line, empty line to finish)")
    return tt.Tabletop(chosen, posture, people, notes, findings, actions)


def _lines(question: str) -> list[str]:
    typer.echo(question, err=True)
    out: list[str] = []
    while True:
        line = typer.prompt("   ", default="", show_default=False, err=True)
        if not line.strip():
            return out
        out.append(line.strip())


@runbook_app.command("render")
def render_cmd(ctx: typer.Context,
               out: Path | None = typer.Option(None, "--out", help="Write to FILE instead of "
                                               "standard output.")) -> None:
    """Write the runbook as Markdown: the team's runbook file (runbook.toml) filled with the
    live figures, posture, targets beside last measured values, activation, playbooks, cadence
    with last done and next due, the first-partner checklist and the runbook history."""
    from spectral.drills import status as status_mod
    from spectral.durable import write_atomic
    from spectral.runbook.load import load_runbook
    from spectral.runbook.render import render

    st = state(ctx)
    check_writable("--out", out)
    book = load_runbook(st.config)
    environment = st.environment()
    name, env, ledger = environment.name, environment.config, environment.ledger
    info = status_mod.collect(name, env, status_mod.facts(environment))
    text = render(name, env, ledger.entries(), info, ledger.head_hash(), book)
    if out is None:
        sys.stdout.write(text)
        return
    with writing("--out", out):
        write_atomic(out, text)
    st.emit({"written": str(out)}, lambda c: c.print(f"wrote {out}"))


def register(app: typer.Typer, drill_app: typer.Typer) -> None:
    app.command("status")(status_cmd)
    app.command("cadence")(cadence_cmd)
    app.command("tabletop")(tabletop_cmd)
    app.command("report")(report_cmd)
    app.add_typer(runbook_app, name="runbook")
    drill_app.command("due")(due_cmd)


def report_cmd(ctx: typer.Context,
               html_file: Path = typer.Option(..., "--html", help="Write the report here."),
               all_environments: bool = typer.Option(False, "--all", help="Every environment "
                                                     "on one page: a summary table, then each "
                                                     "environment's part.")) -> None:
    """A self-contained HTML page (viewable offline, readable printed): drill history, charts
    of measured RTO and RPO against their targets over time, and the latest drill's checks."""
    from datetime import UTC, datetime

    from spectral.durable import write_atomic
    from spectral.ledger.open import open_ledger
    from spectral.report import render_html

    st = state(ctx)
    check_writable("--html", html_file)
    if all_environments:
        from spectral.drills.fleet import fleet_status
        from spectral.fleet_report import render_fleet_html

        fleet = fleet_status(st.config, report=lambda m: st.err.print(m))
        with writing("--html", html_file):
            write_atomic(html_file, render_fleet_html(fleet, datetime.now(UTC)))
        st.emit({"written": str(html_file)}, lambda c: c.print(f"wrote {html_file}"))
        return
    name, env = st.config.environment(st.env)
    ledger = open_ledger(st.config, name)
    status, window = _report_facts(st)
    page = render_html(name, env.posture.value, ledger.entries(), env.rto_seconds,
                       env.rpo_seconds, datetime.now(UTC), status, window)
    with writing("--html", html_file):
        write_atomic(html_file, page)
    st.emit({"written": str(html_file)}, lambda c: c.print(f"wrote {html_file}"))
