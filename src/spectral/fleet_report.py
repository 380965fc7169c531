"""`spectral dr report --all --html FILE`: every environment of the configuration on one
self-contained page for an auditor: a summary table (the rows of `dr status --all`), then each
environment's part as `dr report` renders it (report.py: charts, status, checks, history), each
starting a new printed page.

    from spectral.drills.fleet import fleet_status
    from spectral.fleet_report import render_fleet_html

    html = render_fleet_html(fleet_status(load_config()), datetime.now(UTC))"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from spectral.config.durations import format_duration
from spectral.drills.fleet import FleetStatus
from spectral.errors import SpectralError
from spectral.ledger import Entry
from spectral.report import EnvironmentReport, environment_body, page

STATE_CLASS = {"ok": "pass", "failed": "fail", "overdue": "overdue",
               "could_not_verify": "could_not_verify"}
COLUMNS = ("environment", "posture", "state", "last drill", "RTO / target", "RPO / target",
           "overdue", "recoverable window", "newest backup", "ledger")


def e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _entries(fleet: FleetStatus, name: str) -> list[Entry]:
    try:
        return fleet.environments[name].ledger.entries()
    except (KeyError, SpectralError):
        return []          # its row says why (the evidence store could not be read)


def reports(fleet: FleetStatus) -> list[EnvironmentReport]:
    """Each environment's part of the page, from its row and its own ledger."""
    return [EnvironmentReport(row["name"], row["posture"], _entries(fleet, row["name"]),
                              row["targets"]["rto_seconds"], row["targets"]["rpo_seconds"],
                              row, row["window"]) for row in fleet.rows]


def _measured(row: dict[str, Any], key: str) -> str:
    value, target = row["measured"][key], row["targets"][key]
    shown = format_duration(value) if value is not None else "-"
    return f"{shown} / {format_duration(target) if target else 're-seedable'}"


def _last(last: dict[str, Any] | None) -> str:
    if not last:
        return "never"
    outcome = last["outcome"].replace("_", " ").upper()
    return (f'<span class="{e(last["outcome"])}">{e(outcome)}</span> '
            f'{e(last["at"][:16].replace("T", " "))}')


def _window(w: dict[str, Any] | None) -> str:
    if not w or not (w["earliest"] or w["latest"]):
        return "-"
    return f"{e((w['earliest'] or '?')[:16])} to {e((w['latest'] or '?')[:16])}"


def _backup(b: dict[str, Any]) -> str:
    age = "" if b["age_seconds"] is None else f"{format_duration(max(0, b['age_seconds']))} old, "
    return e(f"{age}{b['state'].replace('_', ' ')}")


def _ledger(led: dict[str, Any] | None) -> str:
    if led is None:
        return "unreadable"
    return f"{led['entries']} entries, {'intact' if led['intact'] else 'DAMAGED'}"


def _row(i: int, r: dict[str, Any]) -> str:
    cells = [f'<a href="#env-{i}">{e(r["name"])}</a>', e(r["posture"]),
             f'<span class="{STATE_CLASS[r["state"]]}">{e(r["state"].replace("_", " "))}</span>',
             _last(r["last_drill"]), e(_measured(r, "rto_seconds")),
             e(_measured(r, "rpo_seconds")), e(", ".join(r["overdue"]) or "-"),
             _window(r["window"]), _backup(r["backup"]), e(_ledger(r["ledger"]))]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def summary(fleet: FleetStatus) -> str:
    """The summary table, and why each environment that could not be verified could not."""
    head = "".join(f"<th>{c}</th>" for c in COLUMNS)
    rows = "".join(_row(i, r) for i, r in enumerate(fleet.rows))
    notes = "".join(f"<li>{e(r['name'])}: could not verify: {e(r['error'])}</li>"
                    for r in fleet.rows if r["error"])
    counts: dict[str, int] = {}
    for r in fleet.rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    told = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(counts.items()))
    return (f'<p id="fleet-counts">{len(fleet.rows)} environment(s): {e(told or "none")}.</p>'
            f'<table id="fleet-summary"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
            f'</table>' + (f'<ul id="fleet-notes">{notes}</ul>' if notes else ""))


def render_fleet_html(fleet: FleetStatus, generated: datetime) -> str:
    sections = "".join(
        f'<section class="environment" id="env-{i}"><h2>{e(r.name)}: '
        f'<span class="{STATE_CLASS[row["state"]]}">{e(row["state"].replace("_", " "))}</span>'
        f'</h2>{environment_body(r, p=f"e{i}-", h=3)}</section>'
        for i, (r, row) in enumerate(zip(reports(fleet), fleet.rows, strict=True)))
    return page("Spectral DR report: every environment", f"""<h1>Disaster-recovery report: every
environment</h1>
<p>Generated {e(generated.isoformat(timespec='seconds'))} by spectral, from each environment's own
provider and evidence store (as of {e(fleet.at.isoformat(timespec='seconds'))}).</p>
{summary(fleet)}
{sections}""")
