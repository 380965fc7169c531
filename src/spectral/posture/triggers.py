"""`spectral dr triggers`: the activation triggers, each evaluated with its evidence."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

import psycopg

from spectral.config.models import EnvironmentConfig, Posture
from spectral.ledger import Entry, EntryKind, payloads
from spectral.ledger.payloads import IncidentRecord
from spectral.posture.samples import Day, Sample, daily, longest_streak

CHURN_THRESHOLD = 0.10
STREAK_DAYS = 15            # "more than 14 consecutive days"
PARTNER_DATA_SQL = ("select c.slug, p.slug, count(r.id) from platform.corpora c "
                    "join core.partners p on p.id = c.partner_id "
                    "left join platform.rules r on r.corpus_id = c.id "
                    "where c.owner = 'partner' group by c.slug, p.slug order by 1")


class TriggerState(StrEnum):
    FIRED = "fired"
    NOT_FIRED = "not fired"
    UNKNOWN = "unknown"


@dataclass
class Trigger:
    name: str
    state: TriggerState
    evidence: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"trigger": self.name, "state": self.state.value, "evidence": self.evidence}


def first_partner_data(conn: psycopg.Connection[Any] | None, query: str = PARTNER_DATA_SQL
                       ) -> Trigger:
    name = "first partner data"
    if conn is None:
        return Trigger(name, TriggerState.UNKNOWN, ["the database is not reachable"])
    try:
        rows = conn.execute(query).fetchall()
    except psycopg.Error as exc:
        return Trigger(name, TriggerState.UNKNOWN, [f"query failed: {exc.diag.message_primary}"])
    evidence = [f"partner-owned corpus {r[0]} of {r[1]}: {r[2]} rules" if len(r) == 3
                else "partner data: " + ", ".join(str(v) for v in r) for r in rows]
    return Trigger(name, TriggerState.FIRED if rows else TriggerState.NOT_FIRED,
                   evidence or ["no partner-owned corpus in platform.corpora"])


def _incidents(entries: list[Entry], keep: Callable[[IncidentRecord], bool]) -> list[str]:
    """The evidence line of each incident `keep` selects."""
    return [f"ledger #{e.seq} {e.at.date()}: {i.summary}" for e in entries
            if e.kind is EntryKind.INCIDENT and keep(i := payloads.incident(e))]


def compromised_credential(entries: list[Entry]) -> Trigger:
    # an incident run through that playbook, or recorded as a near-miss of it
    found = _incidents(entries, lambda i: i.playbook == "compromised-credential")
    return Trigger("compromised-credential incident or near-miss",
                   TriggerState.FIRED if found else TriggerState.NOT_FIRED,
                   found or ["no such incident in the ledger"])


def pitr_covered_failure(entries: list[Entry]) -> Trigger:
    found = _incidents(entries, lambda i: i.pitr_covered)
    return Trigger("first PITR-covered failure",
                   TriggerState.FIRED if found else TriggerState.NOT_FIRED,
                   found or ["no incident marked as one PITR would have covered"])


def sustained_change(samples: list[Sample]) -> tuple[Trigger, list[Day]]:
    days = daily(samples)
    name = "sustained change: > 10% of rows per day for > 14 consecutive days"
    if not days:
        return Trigger(name, TriggerState.UNKNOWN, ["fewer than two daily samples "
                                                    "(spectral dr sample, daily)"]), days
    length, streak = longest_streak(days, CHURN_THRESHOLD)
    gaps = [d for d in days if d.churn is None]
    evidence = [f"longest run above 10%: {length} day(s)"
                + (f" ({streak[0].day} to {streak[-1].day})" if streak else "")]
    evidence += [f"missing day: {d.day} (no sample)" for d in gaps]
    evidence += [f"reset: {d.day} ({d.note})" for d in days if d.note.startswith("statistics")]
    state = TriggerState.FIRED if length >= STREAK_DAYS else TriggerState.NOT_FIRED
    return Trigger(name, state, evidence), days


def customer_launch(env: EnvironmentConfig, today: date) -> Trigger:
    name = "customer launch (the floor)"
    if env.launch_date is None:
        return Trigger(name, TriggerState.UNKNOWN, ["no launch_date configured"])
    fired = env.launch_date <= today
    days = (env.launch_date - today).days
    return Trigger(name, TriggerState.FIRED if fired else TriggerState.NOT_FIRED,
                   [f"launch date {env.launch_date}" + ("" if fired else f", in {days} day(s)")])


def evaluate(env: EnvironmentConfig, conn: psycopg.Connection[Any] | None,
             entries: list[Entry], samples: list[Sample], today: date
             ) -> tuple[list[Trigger], list[Day], bool]:
    """The triggers, the daily series, and whether the posture must be raised now."""
    sustained, days = sustained_change(samples)
    query = env.partner_data_query or PARTNER_DATA_SQL
    triggers = [first_partner_data(conn, query), compromised_credential(entries), sustained,
                pitr_covered_failure(entries), customer_launch(env, today)]
    must_raise = env.posture is not Posture.PITR and any(
        t.state is TriggerState.FIRED for t in triggers)
    return triggers, days, must_raise
