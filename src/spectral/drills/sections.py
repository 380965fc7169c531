"""What a drill's reports show of the copy's quality, section by section: its physical
integrity (pg_amcheck, whether the thorough checks ran, every block's checksum, relation and
block of each damaged place), the collation versions on the restore host, what recovery logged,
row-count drift per load-bearing table, and the recovery point a `--point random` drill chose.

Pure: read from the drill's checks as the drill made them (`DrillResult`, the text report) or as
the ledger keeps them (`DrillRecord`, the HTML report), so both say the same. A check the drill
did not run is a row that says "not run" and why, never a pass."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from spectral.config.durations import format_duration
from spectral.drills import collations, drift, integrity

if TYPE_CHECKING:
    from spectral.drills.result import DrillResult
    from spectral.ledger.payloads import DrillRecord

NOT_RUN = "not_run"
# worst first: a section's state is its worst row's (rows not checked only when all are)
SEVERITY = ("fail", "could_not_verify", "warn", "pass", "not_configured", NOT_RUN)
LABELS = {"pass": "PASS", "fail": "FAIL", "warn": "WARN", "could_not_verify": "COULD NOT VERIFY",
          "not_configured": "NOT CHECKED", NOT_RUN: "NOT RUN"}
EVIDENCE_SHOWN = 30


class CheckLike(Protocol):
    """A check as the drill made it (`Check`) or as the ledger reads it back (`CheckRecord`)."""

    @property
    def name(self) -> str: ...
    @property
    def outcome(self) -> str: ...
    @property
    def detail(self) -> str: ...
    @property
    def evidence(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class Row:
    cells: tuple[str, ...]           # one per column of its section
    state: str = ""                  # a check outcome's value, NOT_RUN; "": a fact, no check
    lines: tuple[str, ...] = ()      # evidence shown under the row


@dataclass(frozen=True)
class Section:
    key: str                         # integrity, collations, recovery-log, drift, point
    title: str
    summary: str
    columns: tuple[str, ...]         # () : rows of facts, a name and its value
    rows: tuple[Row, ...]
    outcome: str | None = None       # the section's state when its rows have none

    @property
    def state(self) -> str:
        states = {r.state for r in self.rows if r.state}
        if not states:
            return self.outcome or NOT_RUN
        return next(s for s in SEVERITY if s in states)

    @property
    def checked(self) -> bool:
        """Whether its rows have outcomes (else they are facts)."""
        return any(r.state for r in self.rows)


@dataclass(frozen=True)
class DrillView:
    """What the sections read of one drill."""

    checks: Sequence[CheckLike]
    outcome: str
    started_at: str | None = None
    row_counts: Mapping[str, int | None] | None = None
    point: Mapping[str, Any] | None = None
    error: str | None = None

    @classmethod
    def of_result(cls, r: DrillResult) -> DrillView:
        return cls(r.checks, r.outcome.value, r.started_at, r.row_counts, r.point, r.error)

    @classmethod
    def of_record(cls, d: DrillRecord) -> DrillView:
        return cls(d.checks, d.outcome, d.started_at, d.row_counts, d.point, d.error)

    def find(self, prefix: str) -> CheckLike | None:
        return next((c for c in self.checks if c.name.startswith(prefix)), None)

    def why_not_run(self) -> str:
        if self.error:
            return f"not run: the drill stopped before it ({self.error})"
        return "not run: the drill's record has no such check (recorded by an older spectral)"


SECTION_CHECKS = (integrity.AMCHECK, integrity.CHECKSUMS, integrity.RECOVERY_LOG,
                  collations.NAME, drift.NAME)


def is_sectioned(name: str) -> bool:
    """Whether a check is shown in a section (so the reports' list of checks can leave it)."""
    return name.startswith(SECTION_CHECKS)


def sections(view: DrillView) -> list[Section]:
    """Every section, in the order the reports show them; one none of whose checks ran is its
    heading and why."""
    return [_or_not_run(s, view) for s in (
        integrity_section(view), collation_section(view), recovery_log_section(view),
        drift_section(view), point_section(view))]


def _or_not_run(section: Section, view: DrillView) -> Section:
    if not section.rows or any(r.state != NOT_RUN for r in section.rows):
        return section
    return Section(section.key, section.title, view.why_not_run(), section.columns, ())


def _row(view: DrillView, check: CheckLike | None, label: str) -> Row:
    if check is None:
        return Row((label, view.why_not_run()), NOT_RUN)
    return Row((label, check.detail), str(check.outcome), tuple(check.evidence))


def integrity_section(view: DrillView) -> Section:
    amcheck, sums = view.find(integrity.AMCHECK), view.find(integrity.CHECKSUMS)
    thorough = amcheck is not None and integrity.THOROUGH_MARK in amcheck.name
    level = ("" if amcheck is None or str(amcheck.outcome) == "not_configured" else
             "thorough (--heapallindexed --parent-check)" if thorough else
             "basic (B-tree indexes and heap pages)")
    rows = (_row(view, amcheck, f"pg_amcheck, {level}" if level else "pg_amcheck"),
            _row(view, sums, "data checksums (pg_checksums --check)"))
    ran = amcheck is not None and str(amcheck.outcome) in {"pass", "fail"}
    said = ("pg_amcheck did not run" if amcheck is None or
            str(amcheck.outcome) == "not_configured" else
            "pg_amcheck did not finish" if not ran else
            "the thorough checks ran" if thorough else
            "the thorough checks did not run (basic only)")
    block = {"pass": "every block's checksum verified", "fail": "blocks fail their checksum",
             "not_configured": "checksums not verified", "could_not_verify":
             "checksums could not be verified"}.get(str(sums.outcome) if sums else "",
                                                    "checksums not verified (not run)")
    damage = "; damage named by relation and block below" if any(
        r.state == "fail" for r in rows) else ""
    summary = f"{said}; {block}{damage}" if amcheck or sums else view.why_not_run()
    return Section("integrity", "Physical integrity of the copy", summary, ("check", "detail"),
                   rows)


def collation_section(view: DrillView) -> Section:
    check = view.find(collations.NAME)
    row = _row(view, check, "versions: the source's snapshot against the restore host")
    summary = {"pass": "the restore host's collation versions are the source's",
               "warn": "a collation version differs: the indexes that depend on it are named",
               "fail": "a collation version differs: the indexes that depend on it are named",
               }.get(row.state, row.cells[1])
    return Section("collations", "Collations on the restore host", summary,
                   ("check", "detail"), (row,))


def recovery_log_section(view: DrillView) -> Section:
    check = view.find(integrity.RECOVERY_LOG)
    row = _row(view, check, "the copy's server log until recovery ended")
    if check is not None:      # warnings and errors first, then where the WAL ended
        notes = tuple(e for e in check.evidence if e.startswith("note: "))
        row = Row(row.cells, row.state,
                  tuple(e for e in check.evidence if e not in notes) + notes)
    summary = {"pass": "no warning or error", "fail": "recovery logged damage: the drill "
               "cannot pass"}.get(row.state, row.cells[1])
    return Section("recovery-log", "What recovery logged", summary, ("log", "detail"), (row,))


def drift_section(view: DrillView) -> Section:
    check = view.find(drift.NAME)
    columns = ("table", "last passing drill", "this drill", "change", "bound")
    if check is None:
        return Section("drift", "Row-count drift", view.why_not_run(), columns, ())
    found = [t for t in map(drift.TableDrift.parse, check.evidence) if t is not None]
    outcome = str(check.outcome)
    rows = [Row((t.table, _n(t.before), _n(t.now), t.change, t.bound or "not compared"),
                (outcome if t.beyond else "pass") if t.bound else "not_configured")
            for t in found]
    seen = {t.table for t in found}
    rows += [Row((table, "-", _n(now), "-", "not compared"), "not_configured")
             for table, now in (view.row_counts or {}).items() if table not in seen]
    baseline = [e for e in check.evidence if e.startswith("against ")]
    summary = check.detail + (f" ({baseline[0]})" if baseline and outcome == "pass" else "")
    if not rows:
        rows = [Row(("-", "-", "-", "-", "-"), outcome)]
    return Section("drift", "Row-count drift", summary, columns, tuple(rows))


def point_section(view: DrillView) -> Section:
    p = view.point
    if not p:
        return Section("point", "Recovery point", "not run: not a --point random drill (the "
                       "point was the newest, or the one asked for)", (), ())
    seed, older = p.get("seed"), float(p.get("older_than_s") or 0)
    skipped = "".join(f", {n} skipped {why}" for why, n in (p.get("skipped") or {}).items())
    rows = (Row(("snapshot", f"{p.get('snapshot', '-')} at LSN {p.get('snapshot_lsn', '-')},"
                 f" taken {p.get('snapshot_taken_at', '-')}")),
            Row(("age", _age(p.get("snapshot_taken_at"), view.started_at, older))),
            Row(("seed", f"{seed} (replay: --point random --seed {seed} --older-than "
                         f"{older:g}s)")),
            Row(("backup", f"{p.get('backup_id', '-')}, the oldest that reaches it")),
            Row(("candidates", f"{p.get('candidates', '-')}{skipped}")))
    return Section("point", "Recovery point chosen at random",
                   f"an old snapshot's point, restored from the oldest backup that reaches it "
                   f"(the drill: {LABELS.get(view.outcome, view.outcome)})", (), rows,
                   view.outcome if view.outcome in LABELS else NOT_RUN)


def _age(taken: str | None, started: str | None, older: float) -> str:
    asked = f"asked: older than {format_duration(older)}"
    try:
        then, now = (datetime.fromisoformat(str(t)) for t in (taken, started))
    except ValueError:
        return f"not known ({asked})"
    then, now = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (then, now))
    return f"{format_duration((now - then).total_seconds())} when the drill started ({asked})"


def _n(rows: int | None) -> str:
    return "-" if rows is None else str(rows)
