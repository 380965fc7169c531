"""The checks every drill makes of a restored copy, whoever made it: schema fingerprints of the
protected schemas, load-bearing row counts (every table's content with --content), the core
contract, which partners' corpora the copy holds, and the RTO and RPO objectives."""

from __future__ import annotations

from spectral.config.durations import format_duration
from spectral.config.models import EnvironmentConfig
from spectral.drills.contract import check_contract
from spectral.drills.result import Check, DrillOutcome, DrillResult
from spectral.verify.compare import Comparison, Outcome, compare
from spectral.verify.content import ScanProgress
from spectral.verify.document import Fingerprint
from spectral.verify.fingerprint import options_for
from spectral.verify.reader import Reader, Rows

OUTCOME = {Outcome.MATCH: DrillOutcome.PASS, Outcome.MISMATCH: DrillOutcome.FAIL,
           Outcome.COULD_NOT_VERIFY: DrillOutcome.COULD_NOT_VERIFY}


def verify_against_snapshot(result: DrillResult, env: EnvironmentConfig, db: Reader,
                            snapshot: Fingerprint, content: bool,
                            progress: ScanProgress | None = None) -> Fingerprint:
    """The checks every drill makes of a restore, whoever restored it: schema fingerprints of
    the protected schemas, load-bearing row counts (every table's content with --content), the
    core contract, and which partners' corpora the restore holds."""
    restored = db.fingerprint(options_for(env, content=content, progress=progress))
    cmp = compare(snapshot, restored, tables=list(env.load_bearing_tables), content=False)
    result.checks.append(schema_check(cmp))
    result.checks.append(table_check("row counts of load-bearing tables", cmp))
    if content:
        full = compare(snapshot, restored, content=True)
        result.checks.append(table_check("content checksums of every table", full))
    result.checks.append(check_contract(db, env.contract))
    result.partner_corpora = restored_partners(db)
    return restored


def restored_partners(db: Rows) -> list[str]:
    """Partners whose corpus the restore contains (the first-partner checklist asks for it)."""
    row = db.rows("select to_regclass('platform.corpora')::text")
    if not row or row[0][0] is None:
        return []
    return [r[0] for r in db.rows(
        "select distinct p.slug from platform.corpora c join core.partners p "
        "on p.id = c.partner_id join platform.rules r on r.corpus_id = c.id "
        "where c.owner = 'partner' order by 1")]


def schema_check(cmp: Comparison) -> Check:
    bad = [s for s in cmp.schemas if s.outcome is not Outcome.MATCH]
    evidence = [f"{s.name}: {s.outcome.value}" for s in cmp.schemas]
    evidence += [f"{s.name}: {d}" for s in bad for d in s.differences]
    differ = [s for s in bad if s.outcome is Outcome.MISMATCH]
    outcome = DrillOutcome.FAIL if differ else (
        DrillOutcome.COULD_NOT_VERIFY if bad else DrillOutcome.PASS)
    detail = ("match" if not bad else f"{len(differ)} schema(s) differ" if differ else
              f"{', '.join(s.name for s in bad)}: exists on neither side")
    return Check("schema fingerprints (" + ", ".join(s.name for s in cmp.schemas) + ")",
                 outcome, detail, evidence)


def table_check(name: str, cmp: Comparison) -> Check:
    outcomes = [OUTCOME[t.outcome] for t in cmp.tables]
    evidence = [f"{t.name}: {t.rows[1] if t.rows[1] is not None else '-'} rows, "
                f"{t.outcome.value}{' (' + t.detail + ')' if t.detail else ''}"
                for t in cmp.tables]
    if DrillOutcome.FAIL in outcomes:
        outcome = DrillOutcome.FAIL
    elif DrillOutcome.COULD_NOT_VERIFY in outcomes or not outcomes:
        outcome = DrillOutcome.COULD_NOT_VERIFY
    else:
        outcome = DrillOutcome.PASS
    return Check(name, outcome, f"{len(cmp.tables)} table(s)", evidence)


def objectives(result: DrillResult) -> None:
    if result.rto_seconds is not None and result.rto_target is not None:
        ok = result.rto_seconds <= result.rto_target
        said = (f"{format_duration(result.rto_seconds)} measured, "
                f"target {format_duration(result.rto_target)}")
        result.checks.append(Check("RTO within target", DrillOutcome.PASS if ok else
                                   DrillOutcome.FAIL, said))
    if result.rpo_target is not None and result.rpo_seconds is not None:
        ok = result.rpo_seconds <= result.rpo_target
        said = (f"{format_duration(result.rpo_seconds)} measured, "
                f"target {format_duration(result.rpo_target)}")
        result.checks.append(Check("RPO within target", DrillOutcome.PASS if ok else
                                   DrillOutcome.FAIL, said))
