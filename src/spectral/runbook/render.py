"""`spectral dr runbook render`: the team's runbook as Markdown. The texts come from its runbook
file (model.py; neutral ones without a file), filled with the live figures; the targets,
cadence and history come from the configuration and the ledger, so they are always what
actually happened."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from spectral.config.base import DEFAULT_RPO_SECONDS, DEFAULT_RTO_SECONDS
from spectral.config.durations import format_duration
from spectral.config.models import EnvironmentConfig, Posture
from spectral.ledger import Entry, EntryKind, payloads
from spectral.playbooks.catalog import playbooks
from spectral.runbook.model import Runbook, fill


def _d(seconds: float | None) -> str:
    return "re-seedable" if seconds is None else format_duration(seconds)


def _m(seconds: float | None) -> str:
    """A measured value: '-' when it was not measured."""
    return "-" if seconds is None else format_duration(seconds)


def _history_line(e: Entry) -> str | None:
    d = e.data
    day = e.at.strftime("%Y-%m-%d %H:%M UTC")
    if e.kind is EntryKind.DRILL:
        done = payloads.drill(e)
        line = (f"- {day} — {done.type} drill: **{done.outcome.upper()}**"
                f"; RTO {_m(done.rto_seconds)}, RPO {_m(done.rpo_seconds)}")
        if done.backup_id:
            line += f"; backup {done.backup_id}"
        if done.error:
            line += f"; {done.error}"
        return line
    if e.kind is EntryKind.TABLETOP:
        review = payloads.tabletop(e)
        return (f"- {day} — tabletop review of {review.scenario}: "
                f"{len(review.participants)} participant(s), "
                f"{len(review.findings)} finding(s), "
                f"{len(review.action_items)} action item(s)")
    if e.kind is EntryKind.INCIDENT:
        incident = payloads.incident(e)
        return f"- {day} — incident: {incident.summary or incident.playbook or ''}"
    if e.kind is EntryKind.ACTIVATION:
        activation = payloads.activation(e)
        return f"- {day} — activation: {activation.summary or activation.trigger}"
    if e.kind is EntryKind.EXIT:
        return f"- {day} — {d.get('summary', 'provider exit')}"
    if e.kind in (EntryKind.RESTORE, EntryKind.REPAIR):
        return f"- {day} — {e.kind.value}: {d.get('summary', '')}"
    return None


Add = Callable[[str], None]


def figures(name: str, env: EnvironmentConfig, status: dict[str, Any]) -> dict[str, str]:
    """The live figures a text of the runbook file may name (model.FIGURES)."""
    measured, last = status["measured"], status.get("last_drill")
    return {"environment": name, "posture": env.posture.value, "provider": env.provider,
            "rpo_target": _d(env.rpo_seconds), "rto_target": _d(env.rto_seconds),
            "measured_rpo": _m(measured["rpo_seconds"]),
            "measured_rto": _m(measured["rto_seconds"]),
            "last_drill": (f"{last['at'][:10]} {last['type']} {last['outcome'].upper()}"
                           if last else "never")}


def render(name: str, env: EnvironmentConfig, entries: list[Entry],
           status: dict[str, Any], head: str, book: Runbook) -> str:
    out: list[str] = []
    values = {**book.tool_names(), **figures(name, env, status)}

    def text(paragraph: str) -> None:
        if paragraph:
            out.append(fill(paragraph, values) + "\n")

    _title(out.append, name, env, status, book)
    text(book.intro)
    _posture(out.append, env)
    text(getattr(book.posture, env.posture.value))
    _targets(out.append, env, status)
    _activation(out.append)
    text(book.activation)
    _playbooks(out.append, env, book)
    _cadence(out.append, status)
    text(book.cadence)
    _checklist(out.append)
    text(book.checklist)
    _history(out, entries, head)
    _related(out.append, [fill(r, values) for r in book.related])
    return "\n".join(out) + "\n"


def _title(add: Add, name: str, env: EnvironmentConfig, status: dict[str, Any],
           book: Runbook) -> None:
    add(f"# {fill(book.title, book.tool_names())}\n")
    source = (f"the runbook file {book.source.name}" if book.source
              else "spectral's neutral texts (no runbook file)")
    add(f"Environment **{name}** (provider {env.provider}), kept by "
        f"{book.tool_names()['team']}. Written by `spectral dr runbook render` from {source}, "
        f"the configuration and the evidence ledger on "
        f"{status['at'][:16].replace('T', ' ')} UTC: change the runbook file, not this page.\n")


def _posture(add: Add, env: EnvironmentConfig) -> None:
    add("## Posture\n")
    add(f"Current tier: **{env.posture.value}**.\n")


def _targets(add: Add, env: EnvironmentConfig, status: dict[str, Any]) -> None:
    tiers = list(Posture)
    add("| Target | " + " | ".join(f"{t.value} (default)" for t in tiers)
        + " | This environment | Last measured |")
    add("|---" * (len(tiers) + 3) + "|")
    measured = status["measured"]
    add("| RPO | " + " | ".join(_d(DEFAULT_RPO_SECONDS[t]) for t in tiers)
        + f" | {_d(env.rpo_seconds)} | {_m(measured['rpo_seconds'])} |")
    add("| RTO | " + " | ".join(_d(DEFAULT_RTO_SECONDS[t]) for t in tiers)
        + f" | {_d(env.rto_seconds)} | {_m(measured['rto_seconds'])} |\n")


def _activation(add: Add) -> None:
    add("## Raising the posture tier\n")
    add("`spectral dr activate-pitr --trigger T` takes four steps and records them as one "
        "ledger entry, with the trigger that started it:\n")
    add("  1. the provider keeps backups: checked against the provider, not assumed;\n"
        "  2. point-in-time recovery is on: checked the same way;\n"
        "  3. the environment's tier becomes pitr in the configuration file;\n"
        "  4. a functional drill falls due within 30 days "
        "(`spectral dr drill functional`).\n")


def _playbooks(add: Add, env: EnvironmentConfig, book: Runbook) -> None:
    add("## Restore playbooks\n")
    add("`spectral dr playbook run NAME` runs one: the automated steps through the provider, "
        "the manual ones shown and confirmed, every step in one incident entry.\n")
    for p in playbooks(book):
        add(f"### {p.title}\n")
        add(f"`spectral dr playbook run {p.name}`, at tier {env.posture.value}:\n")
        for i, step in enumerate(p.steps(env.posture), start=1):
            add(f"  {i}. {step.text}" + (" *(automated)*" if step.automated else ""))
        add("")


def _cadence(add: Add, status: dict[str, Any]) -> None:
    add("## Drill cadence\n")
    add("| Type | Cadence | Effort | Last done | Next due | State |")
    add("|---|---|---|---|---|---|")
    for item in status["cadence"]:
        last = item["last_done"][:10] if item["last_done"] else "never"
        due = item["due"][:10] if item["due"] else "-"
        state = item["state"] + (f" ({item['detail']})" if item["detail"] else "")
        add(f"| {item['name']} | {item['cadence']} | {item['effort']} | {last} | {due} | "
            f"{state} |")
    add("")


def _checklist(add: Add) -> None:
    add("## First-partner checklist\n")
    add("Before a partner's own data is stored for the first time, "
        "`spectral dr checklist first-partner --partner P` must find every item in place:\n")
    for line in ("the tier is pitr and the provider confirms backups and point-in-time "
                 "recovery;",
                 "the partner's corpus exports, validates and imports back "
                 "(`spectral db export-rules --partner P`);",
                 "its folder has a README (the partner, the onboarding date, how to regenerate "
                 "it) and the rules hook re-exports it on every change "
                 "(`spectral db rules-hook install`);",
                 "a functional drill passed in the last 30 days with the corpus in its "
                 "restore;",
                 "the provider exit is planned (`spectral dr portability`)."):
        add(f"- {line}")
    add("")


def _history(out: list[str], entries: list[Entry], head: str) -> None:
    add = out.append
    add("## Runbook history\n")
    add("Drills, tabletop reviews, incidents and activations from the ledger, newest first.\n")
    lines = [ln for e in sorted(entries, key=lambda e: e.seq, reverse=True)
             if (ln := _history_line(e)) is not None]
    out.extend(lines or ["(no entries yet)"])
    add("")
    add(f"Ledger head: `{head}` ({len(entries)} entries; `spectral dr log verify` checks the "
        f"chain). Record it somewhere else to anchor the history.\n")


def _related(add: Add, related: list[str]) -> None:
    add("## Related documents\n")
    for line in related or ["(none named in the runbook file)"]:
        add(f"- {line}")


def stamp(now: datetime) -> str:
    return now.isoformat(timespec="seconds")
