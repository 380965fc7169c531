"""Typed payloads of ledger entries: what an entry of a kind holds, read once from the entry's
JSON (`from_json`) and written as it (`to_json`), so the code that reads the ledger names
fields instead of keys. JSON only at the ledger's edge; the entries already written read the
same (fields an older entry lacks read as their defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from spectral.ledger.store import Entry, EntryKind

Json = dict[str, Any]


@dataclass(frozen=True)
class SnapshotRecord:
    """A snapshot kept in the evidence store: where, when, at which LSN, the schemas'
    checksums (verify/snapshots.py)."""

    KIND: ClassVar[EntryKind] = EntryKind.SNAPSHOT
    path: str                               # relative to the evidence store
    taken_at: str
    lsn: str
    schemas: dict[str, str | None] = field(default_factory=dict)

    def to_json(self) -> Json:
        return {"path": self.path, "taken_at": self.taken_at, "lsn": self.lsn,
                "schemas": self.schemas}

    @classmethod
    def from_json(cls, d: Json) -> SnapshotRecord:
        return cls(str(d.get("path", "")), str(d.get("taken_at", "")), str(d.get("lsn", "")),
                   dict(d.get("schemas") or {}))


@dataclass(frozen=True)
class CheckRecord:
    name: str
    outcome: str
    detail: str = ""
    evidence: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, d: Json) -> CheckRecord:
        return cls(str(d.get("name", "")), str(d.get("outcome", "")), str(d.get("detail", "")),
                   tuple(d.get("evidence") or ()))


@dataclass(frozen=True)
class DrillRecord:
    """A drill as the ledger keeps it (written from `DrillResult.to_json` with the provider's
    kind): what status, cadence, the report and the checklist read of it."""

    KIND: ClassVar[EntryKind] = EntryKind.DRILL
    type: str
    outcome: str
    backup_id: str | None = None
    rto_seconds: float | None = None
    rpo_seconds: float | None = None
    error: str | None = None
    checks: tuple[CheckRecord, ...] = ()
    partner_corpora: tuple[str, ...] = ()
    provider: str | None = None
    timings: dict[str, float] = field(default_factory=dict)   # seconds per step
    # the source's load-bearing counts (drift's baseline); empty in an entry before them
    row_counts: dict[str, int | None] = field(default_factory=dict)
    snapshot_taken_at: str | None = None
    started_at: str | None = None
    point: dict[str, Any] | None = None     # a --point random drill's choice

    @classmethod
    def from_json(cls, d: Json) -> DrillRecord:
        return cls(str(d.get("type", "functional")), str(d.get("outcome", "")), d.get("backup_id"),
                   _seconds(d.get("rto_seconds")), _seconds(d.get("rpo_seconds")),
                   d.get("error"), tuple(CheckRecord.from_json(c) for c in d.get("checks", [])),
                   tuple(d.get("partner_corpora") or ()), d.get("provider"),
                   {k: float(v) for k, v in (d.get("timings") or {}).items()
                    if isinstance(v, int | float)},
                   {str(k): v if isinstance(v, int) else None
                    for k, v in (d.get("row_counts") or {}).items()},
                   d.get("snapshot_taken_at"), d.get("started_at"),
                   d["point"] if isinstance(d.get("point"), dict) else None)


@dataclass(frozen=True)
class TabletopRecord:
    """A tabletop review as the ledger keeps it (written from `Tabletop.to_json`, with the
    facts it was briefed with): what the runbook and cadence read of it."""

    KIND: ClassVar[EntryKind] = EntryKind.TABLETOP
    scenario: str
    participants: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()
    action_items: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, d: Json) -> TabletopRecord:
        return cls(str(d.get("scenario")), tuple(d.get("participants") or ()),
                   tuple(d.get("findings") or ()), tuple(d.get("action_items") or ()))


@dataclass(frozen=True)
class IncidentRecord:
    """An incident or near-miss: recorded by hand (`dr incident record`) or by a playbook's
    run (whose entry holds the whole run; these are the fields every incident has)."""

    KIND: ClassVar[EntryKind] = EntryKind.INCIDENT
    playbook: str | None
    summary: str
    near_miss: bool = False
    pitr_covered: bool = False              # PITR would have covered it (a trigger)

    def to_json(self) -> Json:
        return {"playbook": self.playbook, "summary": self.summary,
                "near_miss": self.near_miss, "pitr_covered": self.pitr_covered}

    @classmethod
    def from_json(cls, d: Json) -> IncidentRecord:
        return cls(d.get("playbook"), str(d.get("summary") or ""),
                   bool(d.get("near_miss", False)), bool(d.get("pitr_covered", False)))


@dataclass(frozen=True)
class StepRecord:
    number: int
    text: str
    done: bool
    evidence: str

    def to_json(self) -> Json:
        return {"number": self.number, "text": self.text, "done": self.done,
                "evidence": self.evidence}

    @classmethod
    def from_json(cls, d: Json) -> StepRecord:
        return cls(int(d.get("number", 0)), str(d.get("text", "")), bool(d.get("done")),
                   str(d.get("evidence", "")))


@dataclass(frozen=True)
class ActivationRecord:
    """The runbook's PITR activation, with the trigger that started it and its steps."""

    KIND: ClassVar[EntryKind] = EntryKind.ACTIVATION
    summary: str
    trigger: str
    steps: tuple[StepRecord, ...] = ()

    def to_json(self) -> Json:
        return {"summary": self.summary, "trigger": self.trigger,
                "steps": [s.to_json() for s in self.steps]}

    @classmethod
    def from_json(cls, d: Json) -> ActivationRecord:
        return cls(str(d.get("summary", "")), str(d.get("trigger", "")),
                   tuple(StepRecord.from_json(s) for s in d.get("steps", [])))


@dataclass(frozen=True)
class RepairRecord:
    """A torn last line removed from the ledger (`dr log repair`): which, and what it held."""

    KIND: ClassVar[EntryKind] = EntryKind.REPAIR
    summary: str
    line: int
    bytes: int
    sha256: str

    def to_json(self) -> Json:
        return {"summary": self.summary, "line": self.line, "bytes": self.bytes,
                "sha256": self.sha256}

    @classmethod
    def from_json(cls, d: Json) -> RepairRecord:
        return cls(str(d.get("summary", "")), int(d.get("line", 0)), int(d.get("bytes", 0)),
                   str(d.get("sha256", "")))


@dataclass(frozen=True)
class KeyRecord:
    """A signing key introduced or added (`add`), or revoked (`revoke`), signed itself."""

    KIND: ClassVar[EntryKind] = EntryKind.KEY
    summary: str
    add: str | None = None                  # the public key (base64) trusted from here on
    revoke: str | None = None               # the public key no longer trusted

    def to_json(self) -> Json:
        return {**({"add": self.add} if self.add else {}),
                **({"revoke": self.revoke} if self.revoke else {}), "summary": self.summary}

    @classmethod
    def from_json(cls, d: Json) -> KeyRecord:
        return cls(str(d.get("summary", "")), str(d["add"]) if d.get("add") else None,
                   str(d["revoke"]) if d.get("revoke") else None)


@dataclass(frozen=True)
class InPlaceRestoreRecord:
    """An in-place restore: the live database rewound to `target` from `backup`, the data it
    replaced kept at `previous`, older kept-aside copies removed."""

    KIND: ClassVar[EntryKind] = EntryKind.RESTORE
    summary: str
    target: str
    backup: str | None
    previous: str | None
    discarded: tuple[str, ...] = ()

    def to_json(self) -> Json:
        return {"summary": self.summary, "in_place": True, "target": self.target,
                "backup": self.backup, "previous": self.previous,
                "discarded": list(self.discarded)}


@dataclass(frozen=True)
class UndoRecord:
    """An undone in-place restore: the data put back, the restore kept aside, the timeline."""

    KIND: ClassVar[EntryKind] = EntryKind.RESTORE
    summary: str
    environment: str
    restored: str
    set_aside: str
    timeline: int

    def to_json(self) -> Json:
        return {"summary": self.summary, "undo": True, "environment": self.environment,
                "restored": self.restored, "set_aside": self.set_aside,
                "timeline": self.timeline}


@dataclass(frozen=True)
class RecoveredRecord:
    """An in-place restore or undo finished (or rolled back) by the next command after its
    process was killed."""

    KIND: ClassVar[EntryKind] = EntryKind.RESTORE
    summary: str
    undo: bool
    target: str | None
    previous: str | None
    discarded: tuple[str, ...] | None = None
    timeline: int | None = None

    def to_json(self) -> Json:
        return {"summary": self.summary, "in_place": True, "undo": self.undo,
                "target": self.target, "previous": self.previous, "recovered": True,
                **({"discarded": list(self.discarded)} if self.discarded is not None else {}),
                **({"timeline": self.timeline} if self.timeline is not None else {})}


def _seconds(value: Any) -> float | None:
    return None if value is None else float(value)


def snapshot(entry: Entry) -> SnapshotRecord:
    _expect(entry, EntryKind.SNAPSHOT)
    return SnapshotRecord.from_json(entry.data)


def drill(entry: Entry) -> DrillRecord:
    _expect(entry, EntryKind.DRILL)
    return DrillRecord.from_json(entry.data)


def tabletop(entry: Entry) -> TabletopRecord:
    _expect(entry, EntryKind.TABLETOP)
    return TabletopRecord.from_json(entry.data)


def incident(entry: Entry) -> IncidentRecord:
    _expect(entry, EntryKind.INCIDENT)
    return IncidentRecord.from_json(entry.data)


def activation(entry: Entry) -> ActivationRecord:
    _expect(entry, EntryKind.ACTIVATION)
    return ActivationRecord.from_json(entry.data)


def _expect(entry: Entry, kind: EntryKind) -> None:
    if entry.kind is not kind:
        raise ValueError(f"ledger entry #{entry.seq} is a {entry.kind.value} entry, "
                         f"not a {kind.value} entry")
