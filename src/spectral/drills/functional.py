"""The functional drill (runbook: "restore the latest managed backup to a throwaway project, run a
schema-checksum comparison across core/worlds/platform, row-count spot-check a few load-bearing
tables, tear down within the billing hour, and log the result"), unattended and measured.

The recovery target is the LSN of the snapshot the restore is compared with, so a passing drill
means the restore equals the source at that instant: schema, counts and, with --content, every
row."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spectral.config.models import EnvironmentConfig
from spectral.drills.contract import check_core_contract
from spectral.drills.result import Check, DrillOutcome, DrillResult, DrillType
from spectral.errors import SpectralError, UsageError
from spectral.ledger import EntryKind, Ledger
from spectral.localenv import LocalEnvironment
from spectral.pg.conn import connect
from spectral.providers.base import Instance, RecoveryTarget, TargetKind
from spectral.providers.local.provider import LocalProvider
from spectral.providers.local.provider import Progress as RestoreProgress
from spectral.verify import snapshots
from spectral.verify.compare import Comparison, Outcome, compare
from spectral.verify.fingerprint import Options, take

OUTCOME = {Outcome.MATCH: DrillOutcome.PASS, Outcome.MISMATCH: DrillOutcome.FAIL,
           Outcome.COULD_NOT_VERIFY: DrillOutcome.COULD_NOT_VERIFY}
Report = Callable[[str], None]


@dataclass(frozen=True)
class DrillRequest:
    drill_type: DrillType = DrillType.FUNCTIONAL
    backup_id: str | None = None
    target_time: str | None = None
    content: bool = False
    keep: bool = False


def run_drill(name: str, env: EnvironmentConfig, local: LocalEnvironment, req: DrillRequest,
              *, report: Report = lambda _m: None,
              progress: RestoreProgress | None = None) -> DrillResult:
    """Run one drill end to end and record it in the ledger, whatever happens."""
    provider = LocalProvider(local, report)
    validate_request(provider, req)   # a usage error is not a drill: nothing runs or is recorded
    with provider.busy(f"{req.drill_type.value} drill"):
        return _run_drill(provider, name, env, local, req, report, progress)


def _run_drill(provider: LocalProvider, name: str, env: EnvironmentConfig,
               local: LocalEnvironment, req: DrillRequest, report: Report,
               progress: RestoreProgress | None) -> DrillResult:
    ledger = Ledger(local.paths.state_dir / "evidence")
    ledger.check_appendable()          # a drill that could not be recorded is not run
    result = DrillResult(req.drill_type, name, datetime.now(UTC).isoformat(timespec="seconds"),
                         rto_target=env.rto_seconds, rpo_target=env.rpo_seconds)
    started = time.monotonic()
    inst: Instance | None = None
    try:
        for orphan in provider.orphans():   # left by a drill that was killed
            report(f"removing orphaned instance {orphan} left by an earlier run")
            provider.teardown(orphan)
        snapshot = _snapshot_for(provider, local, name, env, req, report)
        result.snapshot_taken_at = snapshot["taken_at"]
        if req.target_time is not None:   # restore to that time; compare with the snapshot
            target = RecoveryTarget(TargetKind.TIME, req.target_time)   # taken at or before it
            result.recovery_target = f"time {req.target_time} (compared with the snapshot of " \
                                     f"{snapshot['taken_at']})"
        else:                             # restore exactly to the fresh snapshot's LSN
            target = RecoveryTarget(TargetKind.LSN, snapshot["source"]["lsn"])
            result.recovery_target = f"LSN {target.value} (snapshot of {snapshot['taken_at']})"
        result.timings["provision"] = time.monotonic() - started
        report(f"restoring into a throwaway instance up to {result.recovery_target}")
        mark = time.monotonic()
        inst = provider.restore(target, backup_id=req.backup_id, progress=progress,
                                keep=False)
        result.timings["restore"] = time.monotonic() - mark
        result.backup_id, result.instance = inst.backup_id, inst.to_json()
        report("verifying the restore against the snapshot")
        mark = time.monotonic()
        _verify(result, env, inst, snapshot, req.content)
        _measure_rpo(result, provider, snapshot)
        result.timings["verify"] = time.monotonic() - mark
        result.rto_seconds = time.monotonic() - started
        objectives(result)
    except SpectralError as exc:
        result.error = exc.message
    except BaseException as exc:   # Ctrl-C, SIGTERM: still torn down and recorded
        result.error = f"interrupted ({type(exc).__name__})"
        _finish(provider, ledger, result, inst, req, report)
        raise
    _finish(provider, ledger, result, inst, req, report)
    return result


def validate_request(provider: LocalProvider, req: DrillRequest) -> None:
    from spectral.recovery_target import parse_time

    if req.target_time is not None:
        parse_time(req.target_time)
    if req.backup_id is not None:
        known = [b.id for b in provider.backups()]
        if req.backup_id not in known:
            raise UsageError(f"--backup {req.backup_id!r}: no such backup (known: "
                             f"{', '.join(known) or 'none'}; spectral dr backups)")


def _finish(provider: LocalProvider, ledger: Ledger, result: DrillResult, inst: Instance | None,
            req: DrillRequest, report: Report) -> None:
    if inst is not None:
        if req.keep:
            provider.keep(inst.id)
            result.kept = True
            report(f"keeping instance {inst.id} (--keep): {inst.dsn}")
        else:
            mark = time.monotonic()
            provider.teardown(inst.id)
            result.timings["teardown"] = time.monotonic() - mark
    ledger.append(EntryKind.DRILL, result.environment, result.to_json())


def _snapshot_for(provider: LocalProvider, local: LocalEnvironment, name: str,
                  env: EnvironmentConfig, req: DrillRequest, report: Report) -> dict[str, Any]:
    state_dir = local.paths.state_dir
    if req.target_time is not None:
        from spectral.recovery_target import parse_time

        when = parse_time(req.target_time)
        found = snapshots.at_or_before(state_dir, when)
        if found is None:
            from spectral.errors import CouldNotVerify

            raise CouldNotVerify(f"no snapshot at or before {when.isoformat()} to compare a "
                                 f"restore to that time with", hint="spectral dr snapshot")
        return found
    if not provider.backups():
        from spectral.errors import CouldNotVerify

        raise CouldNotVerify(f"environment {name} has no backups to drill",
                             hint="spectral dr backup")
    report("taking a snapshot of the source to compare the restore with")
    with local.session() as cluster:
        doc = take(cluster.conninfo(), Options(tuple(env.schemas), content=req.content))
        provider.flush_archive()
    snapshots.record(state_dir, name, doc)
    return doc


def _verify(result: DrillResult, env: EnvironmentConfig, inst: Instance,
            snapshot: dict[str, Any], content: bool) -> None:
    verify_against_snapshot(result, env, inst.dsn, snapshot, content)
    stopped = (inst.reached or {}).get("stopped")
    result.checks.append(Check("recovery reached the target",
                               DrillOutcome.PASS if stopped else DrillOutcome.FAIL,
                               f"recovery stopped {stopped}" if stopped else
                               "no recovery stop recorded: it may have ended early"))


def verify_against_snapshot(result: DrillResult, env: EnvironmentConfig, dsn: str,
                            snapshot: dict[str, Any], content: bool) -> dict[str, Any]:
    """The checks every drill makes of a restore, whoever restored it: schema fingerprints of
    the protected schemas, load-bearing row counts (every table's content with --content), the
    core contract, and which partners' corpora the restore holds."""
    restored = take(dsn, Options(tuple(env.schemas), content=content))
    spot = [t for t in env.load_bearing_tables if t in snapshot["tables"]
            or t in restored["tables"]]
    cmp = compare(snapshot, restored, tables=spot, content=False)
    result.checks.append(schema_check(cmp))
    result.checks.append(table_check("row counts of load-bearing tables", cmp))
    if content:
        full = compare(snapshot, restored, content=True)
        result.checks.append(table_check("content checksums of every table", full))
    with connect(dsn) as conn:
        intact, evidence = check_core_contract(conn)
        result.partner_corpora = restored_partners(conn)
    result.checks.append(Check("core contract (worlds and platform fail closed without it)",
                               DrillOutcome.PASS if intact else DrillOutcome.FAIL,
                               "intact" if intact else "broken", evidence))
    return restored


def restored_partners(conn: Any) -> list[str]:
    """Partners whose corpus the restore contains (the first-partner checklist asks for it)."""
    row = conn.execute("select to_regclass('platform.corpora')").fetchone()
    if not row or row[0] is None:
        return []
    return [r[0] for r in conn.execute(
        "select distinct p.slug from platform.corpora c join core.partners p "
        "on p.id = c.partner_id join platform.rules r on r.corpus_id = c.id "
        "where c.owner = 'partner' order by 1")]


def _measure_rpo(result: DrillResult, provider: LocalProvider,
                 snapshot: dict[str, Any]) -> None:
    """RPO: the newest commit the source had at the recovery point (recorded in the snapshot)
    against the newest commit present in the restore (read from the WAL it replayed, up to the
    target). Zero when the restore holds everything committed before the recovery point."""
    restored_last = provider.newest_commit_before(snapshot["source"]["lsn"])
    if restored_last is None:
        return
    recorded = snapshot["source"].get("last_commit")
    # without a recorded commit time (no commit since the server started), the WAL before the
    # recovery point is the source's history too
    source_last = datetime.fromisoformat(recorded) if recorded else restored_last
    result.rpo_seconds = max(0.0, (source_last - restored_last).total_seconds())


def schema_check(cmp: Comparison) -> Check:
    bad = [s for s in cmp.schemas if s.outcome is not Outcome.MATCH]
    evidence = [f"{s.name}: {s.outcome.value}" for s in cmp.schemas]
    evidence += [f"{s.name}: {d}" for s in bad for d in s.differences]
    outcome = DrillOutcome.FAIL if bad else DrillOutcome.PASS
    return Check("schema fingerprints (" + ", ".join(s.name for s in cmp.schemas) + ")",
                 outcome, "match" if not bad else f"{len(bad)} schema(s) differ", evidence)


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
        result.checks.append(Check("RTO within target", DrillOutcome.PASS if ok else
                                   DrillOutcome.FAIL, f"{result.rto_seconds:.1f} s measured, "
                                   f"target {result.rto_target:.0f} s"))
    if result.rpo_target is not None and result.rpo_seconds is not None:
        ok = result.rpo_seconds <= result.rpo_target
        result.checks.append(Check("RPO within target", DrillOutcome.PASS if ok else
                                   DrillOutcome.FAIL, f"{result.rpo_seconds:.1f} s measured, "
                                   f"target {result.rpo_target:.0f} s"))
