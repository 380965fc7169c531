"""The runbook's restore-drill cadence computed from the ledger: functional drill
quarterly once on Pro, tabletop review monthly, post-migration drill after any multi-schema
migration; plus the activation rule (a functional drill within 30 days of activating PITR)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from spectral.config.models import EnvironmentConfig, Posture
from spectral.ledger import Entry, EntryKind, payloads

QUARTER = timedelta(days=91)
MONTH = timedelta(days=30)
ACTIVATION_GRACE = timedelta(days=30)


class ItemState(StrEnum):
    OK = "ok"
    OVERDUE = "overdue"
    NOT_REQUIRED = "not required"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class CadenceItem:
    name: str
    cadence: str
    effort: str
    last_done: datetime | None
    due: datetime | None
    state: ItemState
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "cadence": self.cadence, "effort": self.effort,
                "last_done": self.last_done.isoformat() if self.last_done else None,
                "due": self.due.isoformat() if self.due else None, "state": self.state.value,
                "detail": self.detail}


def _newest(entries: list[Entry], kind: EntryKind,
            keep: Callable[[Entry], bool] = lambda _e: True) -> Entry | None:
    found = [e for e in entries if e.kind is kind and keep(e)]
    return max(found, key=lambda e: e.seq) if found else None


def _passed_functional(entry: Entry) -> bool:
    drill = payloads.drill(entry)
    return drill.type == "functional" and drill.outcome == "pass"


def _state(due: datetime | None, now: datetime) -> ItemState:
    return ItemState.OVERDUE if due is not None and due <= now else ItemState.OK


def functional_item(env: EnvironmentConfig, entries: list[Entry], now: datetime) -> CadenceItem:
    last = _newest(entries, EntryKind.DRILL, _passed_functional)
    activation = _newest(entries, EntryKind.ACTIVATION)
    required = env.posture is not Posture.ALPHA or activation is not None
    last_at = last.at if last else None
    if not required:
        return CadenceItem("Functional restore drill", "quarterly (once on Pro)", "~2 h", last_at,
                           None, ItemState.NOT_REQUIRED, "posture tier alpha: recovery is re-seed")
    due = last_at + QUARTER if last_at else None
    detail = ""
    if activation is not None and (last is None or activation.seq > last.seq):
        by = activation.at + ACTIVATION_GRACE
        due = by if due is None else min(due, by)
        detail = f"within 30 days of the activation on {activation.at.date().isoformat()}"
    if due is None:
        due, detail = now, "never passed since the tier requires it"
    return CadenceItem("Functional restore drill", "quarterly (once on Pro)", "~2 h", last_at,
                       due, _state(due, now), detail)


def tabletop_item(entries: list[Entry], now: datetime) -> CadenceItem:
    last = _newest(entries, EntryKind.TABLETOP)
    last_at = last.at if last else None
    due = last_at + MONTH if last_at else now
    return CadenceItem("Tabletop review", "monthly", "~15 min", last_at, due, _state(due, now),
                       "" if last_at else "never done")


def post_migration_item(entries: list[Entry], now: datetime,
                        changed_schemas: list[str] | None) -> CadenceItem:
    last = _newest(entries, EntryKind.DRILL)
    last_at = last.at if last else None
    if changed_schemas is None:
        return CadenceItem("Post-migration drill", "after any multi-schema migration", "~1 h",
                           last_at, None, ItemState.UNKNOWN,
                           "schemas not compared (the database is not reachable)")
    if len(changed_schemas) > 1:
        return CadenceItem("Post-migration drill", "after any multi-schema migration", "~1 h",
                           last_at, now, ItemState.OVERDUE,
                           f"schemas changed since the last drill: {', '.join(changed_schemas)}")
    detail = (f"only {changed_schemas[0]} changed since the last drill" if changed_schemas
              else "no migration since the last drill")
    return CadenceItem("Post-migration drill", "after any multi-schema migration", "~1 h",
                       last_at, None, ItemState.OK, detail)


def last_drill_schemas(entries: list[Entry]) -> dict[str, str | None] | None:
    """The protected schemas' checksums as of the last drill (its snapshot)."""
    drill = _newest(entries, EntryKind.DRILL)
    if drill is None:
        return None
    snaps = [e for e in entries if e.kind is EntryKind.SNAPSHOT and e.seq < drill.seq]
    return payloads.snapshot(max(snaps, key=lambda e: e.seq)).schemas if snaps else None


def changed_since(before: dict[str, str | None] | None,
                  now_sums: dict[str, str | None]) -> list[str]:
    if before is None:
        return []
    return sorted(s for s in set(before) | set(now_sums) if before.get(s) != now_sums.get(s))


def cadence(env: EnvironmentConfig, entries: list[Entry], now: datetime,
            changed_schemas: list[str] | None) -> list[CadenceItem]:
    return [functional_item(env, entries, now), tabletop_item(entries, now),
            post_migration_item(entries, now, changed_schemas)]


# The most frequent entry the runbook asks for: the monthly tabletop review (every posture tier).
# A ledger whose newest entry is older than that either was cut short (a force-pushed branch,
# deleted entry objects: a fresh checkout cannot tell otherwise) or the cadence was not kept.
QUIET_AT_MOST = MONTH


def looks_cut_short(entries: list[Entry], now: datetime) -> str | None:
    """Why the ledger looks cut short, or None: its newest entry is older than the cadence
    allows. An empty ledger is a new one (nothing to compare)."""
    if not entries:
        return None
    newest = max(entries, key=lambda e: e.seq)
    age = now - newest.at
    if age <= QUIET_AT_MOST:
        return None
    return (f"the ledger looks cut short: its newest entry, entry {newest.seq} of "
            f"{newest.at.isoformat(timespec='seconds')}, is {age.days} days old, but the "
            f"cadence (a tabletop review every {QUIET_AT_MOST.days} days) writes one at least "
            f"that often: newer entries were removed (a force-push, deleted objects), or the "
            f"cadence was not kept")
