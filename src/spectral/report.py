"""`spectral dr report --html FILE`: one self-contained page (no script, no network) with the
drill history, charts of measured RTO and RPO against their targets over time (inline SVG), and
the latest drill's checks."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spectral.config.durations import format_duration
from spectral.drills import sections
from spectral.ledger import Entry, EntryKind, payloads
from spectral.ledger.payloads import CheckRecord, DrillRecord

RTO_COLOUR = "#1f77b4"
RPO_COLOUR = "#2ca02c"
TARGET_COLOUR = "#d62728"
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#222;max-width:70rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f5f5f5}
.pass{color:#0a7d2c;font-weight:600}.fail{color:#b00020;font-weight:600}
.could_not_verify{color:#a15c00;font-weight:600}.warn{color:#a15c00;font-weight:600}.overdue{color:#b00020;font-weight:600}.charts{display:flex;gap:2rem;flex-wrap:wrap}
.not_run,.not_configured{color:#666}tr.evidence td{border-bottom:none;padding-top:0}
ul.evidence{margin:.2rem 0}
figure{margin:0}figcaption{font-weight:600;margin-bottom:.3rem}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _stamp(when: datetime, same_day: bool) -> str:
    return when.strftime("%Y-%m-%d %H:%M" if same_day else "%Y-%m-%d")


@dataclass(frozen=True)
class _Frame:
    """A chart's drawing area and its logarithmic value axis from `lo` to `hi`."""

    width: int
    height: int
    lo: float
    hi: float
    n: int                                   # points along the time axis
    pad_l: int = 64
    pad_r: int = 16
    pad_t: int = 16
    pad_b: int = 44

    @property
    def zero_lane(self) -> int:              # exactly 0 (nothing lost) has its own lane
        return self.height - self.pad_b - 12

    @property
    def floor(self) -> int:                  # where the log scale starts
        return self.height - self.pad_b - 26

    def x(self, i: int) -> float:
        return self.pad_l + (self.width - self.pad_l - self.pad_r) * (
            i / (self.n - 1) if self.n > 1 else 0.5)

    def y(self, v: float) -> float:
        if v <= 0:
            return self.zero_lane
        v = min(max(v, self.lo), self.hi)
        share = (math.log10(v) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        return self.floor - (self.floor - self.pad_t) * share


def chart(chart_id: str, title: str, points: list[tuple[datetime, float]],
          target: float | None, colour: str, width: int = 560, height: int = 240) -> str:
    """A line chart of `points` with the target as a dashed line, as inline SVG. The value axis
    is logarithmic: a 2-second restore and a 60-minute target are both readable on one chart
    (on a linear axis the measured points lie flat on the axis)."""
    values = [v for _, v in points if v > 0] + ([target] if target else [])
    lo = min(values) / 10 if values else 0.1
    hi = max(values) * 3 if values else 10.0
    lo, hi = max(lo, 0.001), max(hi, lo * 10)
    f = _Frame(width, height, lo, hi, len(points))
    parts = _axes(f, chart_id, title)
    if target is not None:
        parts.append(f'<line class="target" x1="{f.pad_l}" y1="{f.y(target):.1f}" '
                     f'x2="{width - f.pad_r}" y2="{f.y(target):.1f}" stroke="{TARGET_COLOUR}" '
                     f'stroke-width="2" stroke-dasharray="6 4"/>')
        parts.append(f'<text x="{width - f.pad_r - 120}" y="{f.y(target) - 4:.1f}" '
                     f'font-size="11" fill="{TARGET_COLOUR}">target '
                     f'{_e(format_duration(target))}</text>')
    if points:
        parts += _series(f, points, colour)
    else:
        parts.append(f'<text x="{width / 2 - 50}" y="{height / 2}" font-size="13">'
                     f'no drills yet</text>')
    parts.append("</svg>")
    return f"<figure><figcaption>{_e(title)}</figcaption>{''.join(parts)}</figure>"


def _axes(f: _Frame, chart_id: str, title: str) -> list[str]:
    width, height, bottom = f.width, f.height, f.height - f.pad_b
    return [f'<svg id="{chart_id}" role="img" aria-label="{_e(title)}" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" data-axis-y="{bottom}" '
            f'xmlns="http://www.w3.org/2000/svg">',
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fff"/>',
            f'<line x1="{f.pad_l}" y1="{bottom}" x2="{width - f.pad_r}" '
            f'y2="{bottom}" stroke="#999"/>',
            f'<line x1="{f.pad_l}" y1="{f.pad_t}" x2="{f.pad_l}" y2="{bottom}" stroke="#999"/>',
            f'<text x="4" y="{f.pad_t + 10}" font-size="11">{_e(format_duration(f.hi))}</text>',
            f'<text x="4" y="{f.floor + 4}" font-size="11">{_e(format_duration(f.lo))}</text>',
            f'<text x="4" y="{f.zero_lane + 4}" font-size="11">0</text>',
            f'<text x="4" y="{bottom + 16}" font-size="10" fill="#666">log scale</text>']


def _series(f: _Frame, points: list[tuple[datetime, float]], colour: str) -> list[str]:
    """The measured line, a point per drill (its time and value on hover), the last value and
    the first and last times."""
    n = len(points)
    same_day = n > 1 and len({w.date() for w, _ in points}) < n
    path = " ".join(f"{f.x(i):.1f},{f.y(v):.1f}" for i, (_, v) in enumerate(points))
    parts = [f'<polyline class="measured" points="{path}" fill="none" '
             f'stroke="{colour}" stroke-width="3"/>']
    for i, (when, v) in enumerate(points):
        parts.append(f'<circle class="point" cx="{f.x(i):.1f}" cy="{f.y(v):.1f}" r="5" '
                     f'fill="{colour}"><title>{_e(_stamp(when, True))}: '
                     f'{_e(format_duration(v))}</title></circle>')
    last_x, last_v = f.x(n - 1), points[-1][1]
    parts.append(f'<text class="last-value" x="{max(f.pad_l, last_x - 60):.1f}" '
                 f'y="{f.y(last_v) - 8:.1f}" font-size="12" fill="{colour}">'
                 f'{_e(format_duration(last_v))}</text>')
    parts.append(f'<text x="{f.pad_l}" y="{f.height - 12}" font-size="11">'
                 f'{_e(_stamp(points[0][0], same_day))}</text>')
    if n > 1:
        parts.append(f'<text x="{f.width - f.pad_r - 100}" y="{f.height - 12}" font-size="11">'
                     f'{_e(_stamp(points[-1][0], same_day))}</text>')
    return parts


SPLIT = (("provision", "provision (restore to a new project, or the copy)"),
         ("restore", "restore"), ("verify", "verify"), ("teardown", "teardown"))


def rto_split(latest: DrillRecord | None, p: str = "") -> str:
    """Where the latest drill's time went."""
    timings = latest.timings if latest else {}
    rows = [(label, timings[key]) for key, label in SPLIT if timings.get(key) is not None]
    rows += [(k, v) for k, v in sorted(timings.items()) if k not in dict(SPLIT)]
    if not rows:
        return "<p>No timings recorded.</p>"
    return (f'<table id="{p}rto-split"><tr><th>step</th><th>time</th></tr>' + "".join(
        f"<tr><td>{_e(k)}</td><td>{_e(format_duration(float(v)))}</td></tr>" for k, v in rows)
        + "</table>")


def status_section(status: dict[str, Any] | None, window: dict[str, Any] | None,
                   p: str = "", h: int = 2) -> str:
    """What `dr status` knows: what is due or overdue, backup freshness, the recoverable
    window, the ledger's integrity."""
    if status is None:
        return ""
    rows = "".join(
        f"<tr><td>{_e(i['name'])}</td><td>{_e((i['last_done'] or 'never')[:16])}</td>"
        f"<td>{_e((i['due'] or '-')[:16])}</td><td class=\"{_e(i['state'].replace(' ', '_'))}\">"
        f"{_e(i['state'])}{': ' + _e(i['detail']) if i['detail'] else ''}</td></tr>"
        for i in status.get("cadence", []))
    backup = status.get("backup") or {}
    ledger = status.get("ledger") or {}
    overdue = status.get("overdue", [])
    win = ("not known" if not window else
           f"{_e(window.get('earliest') or '-')} to {_e(window.get('latest') or '-')}")
    return f"""<h{h}>Status</h{h}>
<p id="{p}status-line" class="{'fail' if overdue else 'pass'}">{'Overdue: ' + _e(', '.join(overdue))
 if overdue else 'Nothing overdue.'}</p>
<table id="{p}cadence"><tr><th>item</th><th>last done</th><th>next due</th><th>state</th></tr>{rows}
</table>
<p>Newest backup: {_e(backup.get('newest') or 'none')} (age {_e(format_duration(
    backup.get('age_seconds')))}, {_e(backup.get('state'))}). Recoverable window: {win}.
{_ledger_line(ledger)}</p>"""


def _ledger_line(ledger: dict[str, Any]) -> str:
    if not ledger:
        return "Ledger: could not be read."
    return (f"Ledger: {_e(ledger.get('entries'))} entries, "
            f"{'intact' if ledger.get('intact') else 'DAMAGED'} "
            f"(head {_e(str(ledger.get('head', ''))[:16])}).")


def _warnings(drill: DrillRecord) -> str:
    n = sum(1 for c in drill.checks if c.outcome == "warn")
    return f" with {n} warning(s)" if n else ""


def _warned(check: CheckRecord) -> str:
    """A warning's evidence under its detail (the tables, counts and indexes it names)."""
    if check.outcome != "warn" or not check.evidence:
        return ""
    return '<ul class="evidence">' + "".join(
        f"<li>{_e(line)}</li>" for line in check.evidence[:30]) + "</ul>"


def checks_table(drill: DrillRecord | None, element_id: str | None = None) -> str:
    """A drill's checks but those its sections show (`quality_sections`)."""
    rows = "".join(
        f"<tr><td>{_e(c.name)}</td><td class=\"{_e(c.outcome)}\">"
        f"{_e(c.outcome.upper())}</td><td>{_e(c.detail)}{_warned(c)}</td></tr>"
        for c in (drill.checks if drill else ()) if not sections.is_sectioned(c.name))
    named = f' id="{_e(element_id)}"' if element_id else ""
    return f'<table class="checks"{named}><tr><th>check</th><th>outcome</th><th>detail</th>' \
           f'</tr>{rows}</table>'


def quality_sections(drill: DrillRecord | None, level: int = 3) -> str:
    """A drill's sections (drills/sections.py): physical integrity, collations, what recovery
    logged, row-count drift, the recovery point of a --point random drill. Classes, not ids:
    a page may hold several environments' (`level`: their headings' level)."""
    if drill is None:
        return ""
    return "".join(section_html(s, level)
                   for s in sections.sections(sections.DrillView.of_record(drill)))


def section_html(section: sections.Section, level: int = 3) -> str:
    """One section: its heading with its state, its summary, its rows (each check's outcome,
    its evidence under it)."""
    state, checked = section.state, section.checked
    head = ("<tr>" + "".join(f"<th>{_e(c)}</th>" for c in section.columns)
            + ("<th>outcome</th>" if checked else "") + "</tr>") if section.columns else ""
    rows = "".join(_section_row(r, checked) for r in section.rows)
    table = f'<table class="section-rows">{head}{rows}</table>' if section.rows else ""
    return (f'<section class="quality {_e(section.key)}" data-section="{_e(section.key)}" '
            f'data-state="{_e(state)}"><h{level}>{_e(section.title)}: <span class="{_e(state)}">'
            f'{_e(sections.LABELS[state])}</span></h{level}><p class="summary">'
            f'{_e(section.summary)}</p>{table}</section>')


def _section_row(row: sections.Row, checked: bool) -> str:
    state = row.state or sections.NOT_RUN
    cells = "".join(f"<td>{_e(c)}</td>" for c in row.cells)
    if checked:
        cells += f'<td class="{_e(state)}">{_e(sections.LABELS[state])}</td>'
    if not row.lines:
        return f'<tr data-state="{_e(row.state)}">{cells}</tr>'
    lines = "".join(f"<li>{_e(line)}</li>" for line in row.lines[:sections.EVIDENCE_SHOWN])
    span = len(row.cells) + (1 if checked else 0)
    return (f'<tr data-state="{_e(row.state)}">{cells}</tr><tr class="evidence">'
            f'<td colspan="{span}"><ul class="evidence">{lines}</ul></td></tr>')


PRINT_CSS = """
@media print{
@page{size:A4;margin:12mm}
body{margin:0;max-width:none;font-size:10.5px}
.environment{break-before:page}
h1,h2,h3{break-after:avoid}
table{width:100%;table-layout:auto}
tr,figure,.charts svg{break-inside:avoid}
td,th{overflow-wrap:break-word;padding:.2rem .3rem}
#fleet-summary{font-size:9.5px}
.charts{gap:.5rem}.charts svg{max-width:100%;height:auto}
a{color:inherit;text-decoration:none}
}
"""


@dataclass(frozen=True)
class EnvironmentReport:
    """What one environment's part of a report shows: its ledger's drills and what `dr status`
    knows (None: it could not say)."""

    name: str
    posture: str
    entries: list[Entry]
    rto_target: float | None
    rpo_target: float | None
    status: dict[str, Any] | None = None
    window: dict[str, Any] | None = None


def _history(drills: list[tuple[datetime, DrillRecord]]) -> str:
    return "".join(
        f"<tr><td>{_e(at.strftime('%Y-%m-%d %H:%M'))}</td><td>{_e(d.type)}</td>"
        f"<td class=\"{_e(d.outcome)}\">{_e(d.outcome.upper())}"
        f"</td><td>{_e(format_duration(d.rto_seconds))}</td>"
        f"<td>{_e(format_duration(d.rpo_seconds))}</td>"
        f"<td>{_e(d.backup_id or '-')}</td>"
        f"<td>{_e(d.error or '')}</td></tr>" for at, d in reversed(drills))


def _latest(latest: DrillRecord | None, p: str) -> str:
    if latest is None:
        return "<p>No drill yet.</p>"
    return (f'<p id="{p}latest-outcome" class="{_e(latest.outcome)}">'
            f'{_e(latest.outcome.upper())}{_e(_warnings(latest))}: '
            f'RTO {_e(format_duration(latest.rto_seconds))}, '
            f'RPO {_e(format_duration(latest.rpo_seconds))}, backup '
            f'{_e(latest.backup_id or "-")}</p>')


def environment_body(r: EnvironmentReport, p: str = "", h: int = 2) -> str:
    """One environment's charts, status, latest drill's checks, time split and drill history;
    `p` prefixes every id (several environments on one page), `h` is the sections' heading
    level."""
    drills = [(e.at, payloads.drill(e)) for e in sorted(
        (e for e in r.entries if e.kind is EntryKind.DRILL), key=lambda e: e.seq)]
    rto = [(at, d.rto_seconds) for at, d in drills if d.rto_seconds is not None]
    rpo = [(at, d.rpo_seconds) for at, d in drills if d.rpo_seconds is not None]
    latest = drills[-1][1] if drills else None
    return f"""<p>Posture tier <strong>{_e(r.posture)}</strong>. {len(drills)} drill(s) in the
ledger.</p>
<div class="charts">
{chart(f"{p}rto-chart", "RTO per drill against the target", rto, r.rto_target, RTO_COLOUR)}
{chart(f"{p}rpo-chart", "RPO per drill against the target", rpo, r.rpo_target, RPO_COLOUR)}
</div>
{status_section(r.status, r.window, p, h)}
<h{h}>Latest drill</h{h}>
{_latest(latest, p)}
{checks_table(latest, f"{p}checks")}
<h{h}>The copy's quality</h{h}>
{quality_sections(latest, h + 1) or '<p>No drill yet.</p>'}
<h{h}>Where the latest drill's time went</h{h}>
{rto_split(latest, p)}
<h{h}>Drill history</h{h}>
<table id="{p}history"><tr><th>when</th><th>type</th><th>outcome</th><th>RTO</th><th>RPO</th>
<th>backup</th><th>reason</th></tr>{_history(drills)}</table>
"""


def page(title: str, body: str) -> str:
    """A self-contained page: no script, no network; the print CSS for an auditor's copy."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{_e(title)}</title><style>{CSS}{PRINT_CSS}</style></head>
<body>
{body}
</body></html>
"""


def render_html(name: str, posture: str, entries: list[Entry], rto_target: float | None,
                rpo_target: float | None, generated: datetime,
                status: dict[str, Any] | None = None,
                window: dict[str, Any] | None = None) -> str:
    report = EnvironmentReport(name, posture, entries, rto_target, rpo_target, status, window)
    return page(f"Spectral DR report: {name}", f"""<h1>Disaster-recovery report: {_e(name)}</h1>
<p>Generated {_e(generated.isoformat(timespec='seconds'))} by spectral.</p>
{environment_body(report)}""")
