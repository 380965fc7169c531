"""`spectral dr status --all` (every environment in one table), `spectral dr alerts test`, and
the alerts a drill or a status sends (after its result is printed: a hook never delays it)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from spectral.cli.state import AppState, state
from spectral.config.durations import format_duration
from spectral.errors import ExitCode, SpectralError, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from spectral.drills.result import DrillResult
    from spectral.environment import Environment

alerts_app = typer.Typer(no_args_is_help=True, help="Webhooks told of failed, unverifiable "
                                                    "and overdue drills ([alerts]).")


def status_all(st: AppState, now: datetime | None, prom_file: Path | None = None) -> None:
    """Every environment's status in one table (and, with `prom_file`, every environment's
    figures in one Prometheus exposition); exit 1 overdue or failed anywhere, else 3 when a
    provider could not be reached, else 0."""
    from spectral.drills.fleet import fleet_status

    fleet = fleet_status(st.config, now, report=lambda m: st.err.print(m))
    if prom_file is not None:
        from spectral.cli.outfile import writing
        from spectral.drills.metrics import write_prometheus

        with writing("--prom-file", prom_file):
            write_prometheus(fleet.rows, prom_file)
    from spectral.cli.outputs import FLEET

    st.emit(fleet.to_json(), lambda c: _fleet_table(c, fleet.rows), schema=FLEET)
    # every environment's alerts at once: one hook that times out (a deadline of seconds per
    # environment) made a fleet of n environments wait n times as long
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(8, len(fleet.rows)))) as pool:
        list(pool.map(lambda row: alert_status(st, fleet.environments[row["name"]], row,
                                               reachable=row["reachable"]), fleet.rows))
    raise typer.Exit(fleet.exit_code)


def _fleet_table(c: Console, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table("environment", "posture", "state", "last drill", "RTO", "RPO", "overdue",
                  "recoverable window", "backup", "ledger")
    for r in rows:
        table.add_row(r["name"], r["posture"], _state_text(r), _last(r["last_drill"]),
                      _measured(r, "rto_seconds"), _measured(r, "rpo_seconds"),
                      ", ".join(r["overdue"]) or "-", _window(r["window"]), _backup(r["backup"]),
                      _ledger(r["ledger"]))
    c.print(table)
    for r in rows:
        if r["error"]:
            c.print(f"{r['name']}: could not verify: {r['error']}")
        for step in r["next_steps"]:
            c.print(f"{r['name']}: to start: {step}")


def _state_text(r: dict[str, Any]) -> str:
    colour = {"ok": "green", "could_not_verify": "yellow"}.get(r["state"], "red")
    return f"[{colour}]{r['state'].replace('_', ' ')}[/]"


def _last(last: dict[str, Any] | None) -> str:
    return f"{last['outcome'].upper()} {last['at'][:16]}" if last else "never"


def _measured(r: dict[str, Any], key: str) -> str:
    value, target = r["measured"][key], r["targets"][key]
    shown = format_duration(value) if value is not None else "-"
    return f"{shown} / {format_duration(target)}" if target else shown


def _window(w: dict[str, Any] | None) -> str:
    if not w or not (w["earliest"] or w["latest"]):
        return "-"
    return f"{(w['earliest'] or '?')[:16]} .. {(w['latest'] or '?')[:16]}"


def _backup(b: dict[str, Any]) -> str:
    age = "" if b["age_seconds"] is None else f"{format_duration(max(0, b['age_seconds']))} old, "
    return f"{age}{b['state']}"


def _ledger(led: dict[str, Any] | None) -> str:
    if led is None:
        return "unreadable"
    return f"{led['entries']} entries, {'intact' if led['intact'] else 'TAMPERED'}"


def alert_status(st: AppState, environment: Environment, status: dict[str, Any],
                 reachable: bool = True) -> None:
    """Tell the hooks what a status made news of; a warning line if that cannot be done."""
    from spectral.alerts.notify import after_status, notify

    try:
        notify(environment, after_status(environment, status, reachable), _warn(st))
    except (SpectralError, OSError) as exc:
        st.err.print(f"warning: alerts of {environment.name} not sent: {exc}")


def alert_drill(st: AppState, result: dict[str, Any],
                environment: Environment | None = None) -> None:
    """Tell the hooks what a drill's result made news of (the result as `--json` prints it,
    with its schema_version); never changes the result."""
    from spectral.alerts.notify import after_drill, notify
    from spectral.cli.outputs import stamped

    result = stamped(result, "drill-result.v1")

    try:
        environment = environment or st.environment()
        notify(environment, after_drill(environment, result), _warn(st))
    except (SpectralError, OSError) as exc:
        st.err.print(f"warning: alerts of the drill not sent: {exc}")


def _warn(st: AppState) -> Any:
    return lambda line: st.err.print(line)


@alerts_app.command("test")
def test_cmd(ctx: typer.Context,
             hook: str | None = typer.Option(None, "--hook", help="Only this webhook (default: "
                                             "every one in [alerts.webhooks]).")) -> None:
    """Send a test alert to the configured webhooks and record each delivery in the
    environment's ledger. Exit 1 when a hook did not answer with 2xx."""
    from spectral.alerts.notify import Alert, notify
    from spectral.alerts.settings import AlertEvent

    st = state(ctx)
    hooks = st.config.alerts.webhooks
    if not hooks:
        raise UsageError("no webhooks configured", hint="add [alerts.webhooks.<name>] with a "
                                                        "url secret reference")
    if hook is not None and hook not in hooks:
        raise UsageError(f"--hook {hook!r}: not one of {', '.join(sorted(hooks))}")
    environment = st.environment()
    alert = Alert(AlertEvent.TEST, environment.name, "a test alert from spectral dr alerts test")
    sent = notify(environment, [alert], _warn(st), only=hook)
    data = [{"hook": name, "delivered": d.delivered, "http_status": d.status, "error": d.error,
             "attempts": d.attempts} for name, _a, d in sent]

    def human(c: Console) -> None:
        for d in data:
            c.print(f"{d['hook']}: " + (f"delivered (HTTP {d['http_status']})" if d["delivered"]
                                        else f"NOT delivered: {d['error']}")
                    + f" after {d['attempts']} attempt(s)")

    st.emit(data, human)
    raise typer.Exit(ExitCode.OK if all(d["delivered"] for d in data) else
                     ExitCode.CHECK_FAILED)


def drill_due_all(st: AppState, run: bool) -> None:
    """`dr drill due --all [--run]`: every environment's due drills, and with --run each one
    drilled; each result alerted as a drill's is, right after it."""
    from spectral.drills.due import drill_due

    def told(environment: Environment, result: DrillResult) -> None:
        if not st.json:           # each result as it comes (redacted, as emit prints)
            from spectral.cli.drill_cmds import print_drill

            st.emit(None, lambda c: print_drill(c, result))
        alert_drill(st, result.to_json(), environment)

    done = drill_due(st.config, run=run, report=lambda m: st.err.print(f"drill: {m}"),
                     on_result=told)

    def human(c: Console) -> None:
        for e in done.environments:
            what = {"not_due": "nothing due", "due": "due", "not_run": "due, NOT run",
                    "drilled": "drilled", "could_not_verify": "could not verify"}[e.action.value]
            c.print(f"{e.name}: {what}" + (f": {', '.join(e.due)}" if e.due else "")
                    + (f" -> {e.result.outcome.value.upper()}" if e.result else "")
                    + (f" ({e.reason})" if e.reason else ""))

    from spectral.cli.outputs import DUE_ALL

    st.emit(done.to_json(), human, schema=DUE_ALL)
    raise typer.Exit(done.exit_code)
