"""Accepting a drop on purpose (`spectral dr drift accept`): a load-bearing table whose rows
drifted beyond its bound warns at every drill until the counts are back or the bound is changed
(drills/drift.py). A purge that was meant (retention, a deletion request, an archived tenant)
would then warn for ever, and a warning that never stops is one nobody reads. Accepting it is a
ledger entry naming the tables, the drill that saw the drop, both counts and why: from it on,
those tables are compared with the accepted counts, every other table with the last passing
drill as before. Nothing is accepted in silence: the entry is signed and chained like any other,
the drill's evidence names it, and only a drift the newest drill reported can be accepted."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, ClassVar

from spectral.drills.drift import NAME, TableDrift
from spectral.drills.result import DrillOutcome
from spectral.errors import UsageError, shown
from spectral.ledger import Entry, EntryKind, payloads

WARNED = {DrillOutcome.WARN.value, DrillOutcome.FAIL.value}


@dataclass(frozen=True)
class AcceptedCount:
    """One table's accepted count: `before` was the baseline, `accepted` the drill's."""

    before: int
    accepted: int


@dataclass(frozen=True)
class DriftAcceptRecord:
    """A drift accepted on purpose, as the ledger keeps it."""

    KIND: ClassVar[EntryKind] = EntryKind.DRIFT_ACCEPTED
    summary: str
    reason: str
    drill_seq: int                               # the drill whose drift is accepted
    snapshot_taken_at: str | None                # that drill's recovery point
    tables: dict[str, AcceptedCount] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary, "reason": self.reason, "drill_seq": self.drill_seq,
                "snapshot_taken_at": self.snapshot_taken_at,
                "tables": {t: {"before": c.before, "accepted": c.accepted}
                           for t, c in self.tables.items()}}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DriftAcceptRecord:
        tables = {}
        for name, counts in (d.get("tables") or {}).items():
            if isinstance(counts, dict) and all(isinstance(counts.get(k), int)
                                                for k in ("before", "accepted")):
                tables[str(name)] = AcceptedCount(counts["before"], counts["accepted"])
        return cls(str(d.get("summary", "")), str(d.get("reason", "")),
                   int(d.get("drill_seq", 0)), d.get("snapshot_taken_at"), tables)


def drifted(entries: list[Entry], environment: str
            ) -> tuple[Entry, dict[str, TableDrift], dict[str, int]]:
    """The newest drill of `environment` that checked drift, when its drift warned (or
    failed): that drill, the tables beyond their bounds not accepted yet, and those accepted
    already (-> the acceptance's entry). UsageError otherwise: a drift that a later drill no
    longer reports, or one accepted whole, is not accepted again."""
    checked = [(e, c) for e in entries if e.kind is EntryKind.DRILL
               and e.environment == environment
               for c in payloads.drill(e).checks if c.name == NAME
               and c.outcome != DrillOutcome.NOT_CONFIGURED.value]
    if not checked:
        raise UsageError(f"no drill of {environment} has compared row counts yet: there is no "
                         f"drift to accept")
    entry, check = max(checked, key=lambda ec: ec[0].seq)
    if check.outcome not in WARNED:
        raise UsageError(f"the newest drill of {environment} (ledger entry #{entry.seq}) found "
                         f"every load-bearing table within its bound: there is no drift to "
                         f"accept")
    done = [e for e in entries if e.kind is EntryKind.DRIFT_ACCEPTED
            and e.environment == environment
            and DriftAcceptRecord.from_json(e.data).drill_seq == entry.seq]
    beyond = {t.table: t for line in check.evidence
              if (t := TableDrift.parse(line)) is not None and t.beyond}
    accepted = {t: e.seq for e in done for t in DriftAcceptRecord.from_json(e.data).tables}
    left = {t: d for t, d in beyond.items() if t not in accepted}
    if not left:
        raise UsageError(f"the drift of the newest drill of {environment} (ledger entry "
                         f"#{entry.seq}) was accepted already (entry #{done[-1].seq})" if done
                         else f"the newest drill of {environment} (ledger entry #{entry.seq}) "
                              f"names no table beyond its bound")
    return entry, left, accepted


def accept(entries: list[Entry], environment: str, tables: list[str],
           reason: str) -> DriftAcceptRecord:
    """The record accepting `tables` (every drifted table when none is named) of the newest
    drill's drift. UsageError naming the drifted tables for a table that did not drift."""
    if not reason.strip():
        raise UsageError("say why the drift is expected: --reason TEXT (it is kept in the "
                         "ledger with the accepted counts)")
    entry, beyond, accepted = drifted(entries, environment)
    again = [t for t in tables if t in accepted]
    if again:
        raise UsageError(f"{', '.join(map(shown, again))}: the drift of the newest drill of "
                         f"{environment} (ledger entry #{entry.seq}) was accepted already (entry "
                         f"#{accepted[again[0]]}); not accepted yet: {', '.join(sorted(beyond))}")
    unknown = [t for t in tables if t not in beyond]
    if unknown:
        raise UsageError(f"{', '.join(map(shown, unknown))}: not beyond its bound in the newest "
                         f"drill of {environment} (ledger entry #{entry.seq}); drifted: "
                         f"{', '.join(sorted(beyond))}")
    chosen = {t: beyond[t] for t in (tables or sorted(beyond))}
    counts = {t: AcceptedCount(d.before, d.now) for t, d in chosen.items()
              if d.before is not None and d.now is not None}
    at = entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    return DriftAcceptRecord(
        f"drift accepted: {'; '.join(d.moved for d in chosen.values())} (the drill of {at} "
        f"UTC): {reason.strip()}", reason.strip(), entry.seq,
        payloads.drill(entry).snapshot_taken_at, counts)


def acceptances(entries: list[Entry], environment: str, after_seq: int
                ) -> list[tuple[Entry, DriftAcceptRecord]]:
    """The drifts of `environment` accepted after ledger entry `after_seq` (the baseline
    drill), oldest first: a later passing drill within its bounds is the baseline again."""
    return [(e, DriftAcceptRecord.from_json(e.data)) for e in entries
            if e.kind is EntryKind.DRIFT_ACCEPTED and e.environment == environment
            and e.seq > after_seq]
