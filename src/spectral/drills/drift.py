"""Drift against the last good drill: each load-bearing table's row count at this drill's
recovery point against the count the previous passing drill of the same environment recorded.
The copy can equal its source while the source itself lost rows since (a bad migration, a
runaway DELETE): a move beyond the table's bound (`drift`, `drift_default`, config/drift.py) is
a warning naming the table and both counts, or a failure with `on_drift = "fail"`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from spectral.config.base import OnFinding
from spectral.config.drift import parse_drift
from spectral.config.models import EnvironmentConfig
from spectral.drills.result import Check, DrillOutcome, DrillResult
from spectral.ledger import Entry, EntryKind, payloads
from spectral.ledger.payloads import DrillRecord
from spectral.verify.compare import table_facts
from spectral.verify.document import Fingerprint

NAME = "row-count drift since the last passing drill"


@dataclass(frozen=True)
class Baseline:
    """The previous passing drill: when the ledger took it, and what it recorded; and the
    tables whose drift since was accepted (`dr drift accept`): table -> (the accepted count,
    the acceptance as evidence says it)."""

    at: datetime
    drill: DrillRecord
    accepted: dict[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int | None]:
        """What each table is compared with: the drill's count, or the accepted one."""
        return {**self.drill.row_counts, **{t: n for t, (n, _) in self.accepted.items()}}

    @property
    def said(self) -> str:
        return f"the passing drill of {self.at.astimezone(UTC).strftime('%Y-%m-%d %H:%M')} UTC"

    @property
    def line(self) -> str:
        """The baseline as evidence: the drill, and the snapshot its counts are from."""
        of = self.drill.snapshot_taken_at
        return f"against {self.said}" + (f", snapshot of {of}" if of else "")


@dataclass(frozen=True)
class TableDrift:
    """One load-bearing table between the baseline and this drill, as its evidence line says
    it (`line`) and the reports read it back (`parse`: the one reader of that line)."""

    table: str
    before: int | None
    now: int | None
    bound: str | None = None     # as configured; None: not compared
    beyond: bool = False

    @property
    def moved(self) -> str:
        return f"{self.table}: {self.before} -> {self.now} rows ({self.change})"

    @property
    def change(self) -> str:
        if self.before is None or self.now is None:
            return "-"
        return _change(self.before, self.now)

    def line(self) -> str:
        if self.bound is None:
            return (f"{self.table}: {_count(self.before)} -> {_count(self.now)} rows, not "
                    f"compared (not counted on both sides)")
        if self.beyond:
            return (f"{self.moved}, beyond its bound {self.bound} "
                    f"({parse_drift(self.bound).describe()})")
        return f"{self.moved}, within {self.bound}"

    @classmethod
    def parse(cls, line: str) -> TableDrift | None:
        """The table a `line` of a drift check's evidence is about; None for other lines."""
        m = _LINE.match(line)
        if m is None:
            return None
        before, now = (None if m[k] == "-" else int(m[k]) for k in ("before", "now"))
        if m["beyond"] is not None:
            return cls(m["table"], before, now, m["beyond"], True)
        return cls(m["table"], before, now, m["within"])


_LINE = re.compile(r"^(?P<table>.+?): (?P<before>\d+|-) -> (?P<now>\d+|-) rows"
                   r"(?: \([^)]*\))?, (?:beyond its bound (?P<beyond>.+?) \(.*\)|"
                   r"within (?P<within>.+)|not compared .*)$")


def load_bearing_counts(snapshot: Fingerprint, tables: list[str]) -> dict[str, int | None]:
    """Each load-bearing table's rows in the snapshot (None: not there, or not readable)."""
    counts: dict[str, int | None] = {}
    for name in tables:
        facts = table_facts(snapshot, name)
        counts[name] = facts.rows if facts is not None and facts.ok else None
    return counts


def baseline(entries: list[Entry], environment: str,
             taken_at: str | None = None) -> Baseline | None:
    """The newest passing drill of `environment` among those at the newest point (snapshot),
    if any; with `taken_at` (this drill's snapshot), of those not later: a drill restoring an
    older point (--target-time, --point random) is compared with the data before it, not with
    today's, and is no baseline for a drill of a later point than its own."""
    def before(taken: str | None) -> bool:
        theirs, ours = _instant(taken), _instant(taken_at)
        return theirs is None or ours is None or theirs <= ours

    # a drill whose own drift warned is no baseline: a drop is compared with the counts from
    # before it at every drill until it is gone, not accepted by the next drill in silence
    found = [(e, d) for e in entries if e.kind is EntryKind.DRILL and e.environment == environment
             and (d := payloads.drill(e)).outcome == DrillOutcome.PASS.value
             and before(d.snapshot_taken_at)
             and not any(c.name == NAME and c.outcome != DrillOutcome.PASS.value
                         and c.outcome != DrillOutcome.NOT_CONFIGURED.value for c in d.checks)]
    if not found:
        return None
    # a drill of the newest point, not merely the newest drill: a drill at an old point
    # (--point random, --target-time) is no baseline for the drills of today
    points = [_instant(d.snapshot_taken_at) for _, d in found]
    newest = max((p for p in points if p is not None), default=None)
    entry, drill = max((f for f, p in zip(found, points, strict=True)
                        if p is None or newest is None or p >= newest), key=lambda f: f[0].seq)
    return Baseline(entry.at, drill, _accepted(entries, environment, entry.seq, before))


def _accepted(entries: list[Entry], environment: str, after: int,
              before: Callable[[str | None], bool]) -> dict[str, tuple[int, str]]:
    """The counts accepted since the baseline drill (entry `after`), of drills at a point
    not later than this drill's."""
    from spectral.drills.drift_accept import acceptances

    out: dict[str, tuple[int, str]] = {}
    for entry, record in acceptances(entries, environment, after):
        if before(record.snapshot_taken_at):
            when = entry.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
            for table, counts in record.tables.items():
                out[table] = (counts.accepted, f"accepted on {when} UTC (ledger entry "
                                               f"#{entry.seq}): {record.reason}")
    return out


def drift_check(env: EnvironmentConfig, counts: dict[str, int | None],
                previous: Baseline | None, environment: str) -> Check:
    """The drift check of counts `counts` against the baseline's."""
    if previous is None:
        return Check(NAME, DrillOutcome.NOT_CONFIGURED,
                     f"no earlier passing drill of {environment}: nothing to compare with (a "
                     f"passing drill's counts are the next one's baseline)")
    if not previous.counts:
        return Check(NAME, DrillOutcome.NOT_CONFIGURED,
                     f"{previous.said} recorded no row counts (an older spectral): nothing to "
                     f"compare with")
    evidence, beyond, compared = [], [], 0
    for table, now in counts.items():
        before = previous.counts.get(table)
        if before is None or now is None:
            evidence.append(TableDrift(table, before, now).line())
            continue
        compared += 1
        bound = env.drift.get(table, env.drift_default)
        moved = TableDrift(table, before, now, bound, parse_drift(bound).beyond(before, now))
        if moved.beyond:
            beyond.append((f"{moved.moved} beyond {bound}", moved.line()))
        else:
            evidence.append(moved.line())
    evidence.append(previous.line)
    evidence += [f"{t}: compared with {n} rows, its drift {what}"
                 for t, (n, what) in previous.accepted.items() if t in counts]
    if beyond:
        outcome = DrillOutcome.FAIL if env.on_drift is OnFinding.FAIL else DrillOutcome.WARN
        return Check(NAME, outcome, "; ".join(short for short, _ in beyond) + f" since "
                     f"{previous.said}: the source may have lost data",
                     [long for _, long in beyond] + evidence)
    if not compared:
        return Check(NAME, DrillOutcome.NOT_CONFIGURED,
                     f"no load-bearing table counted by both this drill and {previous.said}: "
                     f"nothing to compare with", evidence)
    return Check(NAME, DrillOutcome.PASS,
                 f"{compared} table(s) within their bounds since {previous.said}", evidence)


def check_drift(result: DrillResult, env: EnvironmentConfig, entries: list[Entry],
                snapshot: Fingerprint) -> None:
    """Record this drill's load-bearing counts (the next drill's baseline) and check them
    against the previous passing drill's."""
    result.row_counts = load_bearing_counts(snapshot, list(env.load_bearing_tables))
    result.checks.append(drift_check(env, result.row_counts,
                                     baseline(entries, result.environment, snapshot.taken_at),
                                     result.environment))


def _instant(iso: str | None) -> datetime | None:
    """A recorded time, None when there is none (or it is not one)."""
    try:
        when = datetime.fromisoformat(iso or "")
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _count(rows: int | None) -> str:
    return "-" if rows is None else str(rows)


def _change(before: int, now: int) -> str:
    if before == 0:
        return "from none" if now else "unchanged"
    return f"{(now - before) * 100 / before:+.1f}%"
