"""The functional drill on Supabase, guided. Drills never restore production in place, and
"restore to a new project" has no public endpoint, so the operator clicks it: the tool says
exactly what to click and which point in time to pick, waits for the new project (or takes
--restored-ref), waits for it to be healthy, verifies it against the snapshot like any drill,
deletes it after confirmation within the billing hour, and records RTO as measured (the clicks
are part of a real recovery's time too).

`--branch` uses a branch with data instead: fully automatic, but it proves less (see BRANCH_NOTE).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spectral.config.models import EnvironmentConfig
from spectral.confirm import Confirmer
from spectral.drills.functional import objectives, verify_against_snapshot
from spectral.drills.result import DrillResult, DrillType
from spectral.errors import (
    ConnectError,
    CouldNotVerify,
    RefusedError,
    SpectralError,
    UsageError,
)
from spectral.ledger import EntryKind, Ledger
from spectral.providers.supabase.provider import SupabaseProvider
from spectral.verify import snapshots
from spectral.verify.fingerprint import Options, take
from spectral.waits import WaitTimeout, wait_until

Report = Callable[[str], None]
BILLING_HOUR = 3600.0
BILLING_WARN = 50 * 60.0
BRANCH_NOTE = ("a branch with data proves that the project's data can be materialised into a "
               "separate database and matches the snapshot's schemas and counts; it does not "
               "exercise the dashboard's restore to a new project, nor a point in time, so its "
               "time is not the RTO of an incident restore")


@dataclass(frozen=True)
class GuidedRequest:
    restored_ref: str | None = None      # the operator already restored: use this project
    restored_dsn: str | None = None      # resolved; default: the environment's DSN, ref swapped
    target_time: datetime | None = None  # with restored_ref: the point the operator restored
    branch: bool = False                 # a data branch instead of restore-to-new-project
    content: bool = False
    wait: float = 7200.0                 # how long to wait for the operator and for Supabase
    keep: bool = False                   # leave the throwaway up (delete it within the hour)
    drill_type: DrillType = DrillType.FUNCTIONAL


@dataclass
class _Throwaway:
    ref: str
    branch_id: str | None = None
    created_at: datetime | None = None
    keep: bool = False                   # left up on purpose (it could not be verified yet)


def run_guided_drill(name: str, env: EnvironmentConfig, sp: SupabaseProvider, state_dir: Path,
                     req: GuidedRequest, confirmer: Confirmer, *,
                     report: Report = lambda _m: None) -> DrillResult:
    """Run the drill end to end and record it in the ledger, whatever happens."""
    ledger = Ledger(state_dir / "evidence")
    result = DrillResult(req.drill_type, name,
                         datetime.now(UTC).isoformat(timespec="seconds"),
                         rto_target=env.rto_seconds, rpo_target=env.rpo_seconds)
    started = time.monotonic()
    throwaway: _Throwaway | None = None
    try:
        if req.restored_ref == sp.ref:
            raise UsageError(f"--restored-ref {sp.ref} is the environment's own project; a "
                             f"drill verifies a restored copy, never production")
        _backups, _window, flags = sp.backups()

        def fresh() -> dict[str, Any]:
            return _fresh_snapshot(sp, state_dir, name, env, req.content, report)

        if req.branch:
            report(f"note: {BRANCH_NOTE}")
            snapshot = fresh()
            throwaway = _branch(sp, result, report)
        elif req.restored_ref:
            snapshot = (_stored_snapshot(state_dir, req.target_time, f"project "
                                         f"{req.restored_ref}") if req.target_time else fresh())
            throwaway = _Throwaway(req.restored_ref)
            result.recovery_target = (f"project {req.restored_ref} restored by the operator"
                                      + (f" to {req.target_time.isoformat()}"
                                         if req.target_time else " (compared with now)"))
        else:
            snapshot, throwaway = _guided_restore(sp, state_dir, fresh, flags, result, req,
                                                  report)
        result.snapshot_taken_at = snapshot["taken_at"]
        result.instance = {"project_ref": throwaway.ref, "branch_id": throwaway.branch_id}
        result.timings["provision"] = time.monotonic() - started
        mark = time.monotonic()
        sp.wait_healthy(throwaway.ref, timeout=req.wait, report=report, what="restored project")
        throwaway.created_at = _created_at(sp.project(throwaway.ref))
        result.timings["restore"] = time.monotonic() - mark
        report(f"verifying project {throwaway.ref} against the snapshot of "
               f"{snapshot['taken_at']}")
        mark = time.monotonic()
        dsn = req.restored_dsn or sp.dsn_for(throwaway.ref)
        try:
            restored = verify_against_snapshot(result, env, dsn, snapshot, req.content)
        except ConnectError as exc:
            # the copy is fine, the way in is not: keep it, so a rerun can verify it
            throwaway.keep = True
            when = (f" --target-time {snapshot['taken_at']}" if not req.branch else "")
            raise CouldNotVerify(
                f"cannot connect to project {throwaway.ref}: {exc.message}; it is kept: "
                f"spectral dr drill functional --restored-ref {throwaway.ref}{when} "
                f"--restored-dsn <its connection string or a secret reference>") from None
        _rpo(result, snapshot, restored)
        result.timings["verify"] = time.monotonic() - mark
        result.rto_seconds = time.monotonic() - started
        if req.branch:   # not an incident restore: its time is shown, not held to the target
            result.timings["branch_total"] = result.rto_seconds
            result.rto_seconds = None
        objectives(result)
    except SpectralError as exc:
        result.error = exc.message
    except BaseException as exc:   # Ctrl-C: still offered for deletion and recorded
        result.error = f"interrupted ({type(exc).__name__})"
        _finish(sp, ledger, result, throwaway, confirmer, report, req.keep)
        raise
    _finish(sp, ledger, result, throwaway, confirmer, report, req.keep)
    return result


def _fresh_snapshot(sp: SupabaseProvider, state_dir: Path, name: str, env: EnvironmentConfig,
                    content: bool, report: Report) -> dict[str, Any]:
    report(f"taking a snapshot of project {sp.ref} to compare the restore with")
    doc = take(sp.dsn, Options(tuple(env.schemas), content=content))
    snapshots.record(state_dir, name, doc)
    return doc


def _stored_snapshot(state_dir: Path, when: datetime, what: str) -> dict[str, Any]:
    found = snapshots.at_or_before(state_dir, when)
    if found is None:
        raise CouldNotVerify(f"no snapshot at or before {when.isoformat()} to compare {what} "
                             f"with", hint="run spectral dr snapshot right after the daily "
                                           "backup (cron), so every backup has one")
    return found


def _guided_restore(sp: SupabaseProvider, state_dir: Path, fresh: Callable[[], dict[str, Any]],
                    flags: dict[str, Any], result: DrillResult, req: GuidedRequest,
                    report: Report) -> tuple[dict[str, Any], _Throwaway]:
    """Tell the operator what to click, then wait for the project that click creates."""
    if flags.get("pitr_enabled"):
        snapshot = fresh()
        # the first whole second after the snapshot: the restore holds what the snapshot saw
        when = datetime.fromtimestamp(
            math.ceil(datetime.fromisoformat(snapshot["taken_at"]).timestamp()), UTC)
        _wait_for_window(sp, when, req.wait, report)
        choice = (f"the Point in Time tab, recovery time {when.strftime('%Y-%m-%d %H:%M:%S')} "
                  f"UTC (unix {int(when.timestamp())})")
        result.recovery_target = f"time {when.isoformat()} (snapshot of {snapshot['taken_at']})"
    else:
        backups, _window, _flags = sp.backups()
        done = [b for b in backups if b.status == "COMPLETED"]
        if not done:
            raise CouldNotVerify(f"project {sp.ref} has no completed backup to drill")
        newest = max(done, key=lambda b: b.inserted_at)
        when = datetime.fromisoformat(newest.inserted_at.replace("Z", "+00:00"))
        try:
            snapshot = _stored_snapshot(state_dir, when, f"the daily backup {newest.id}")
        except CouldNotVerify as exc:
            raise CouldNotVerify(f"{exc.message}; or drill a branch with data now (--branch)",
                                 hint=exc.hint) from None
        choice = f"the Scheduled backups tab, the backup of {when.isoformat()}"
        result.recovery_target = f"daily backup {newest.id} of {when.isoformat()}"
    result.backup_id = result.recovery_target
    known = sp.project_refs()
    report("now, in the Supabase dashboard:")
    report(f"  1. open project {sp.ref} -> Database -> Backups -> Restore to a new project")
    report(f"  2. choose {choice}")
    report("  3. keep the same region and confirm: Supabase creates a new project")
    report("waiting for the new project to appear (Ctrl-C to stop; a later run can take "
           "--restored-ref REF)")
    report("nobody to click (a scheduled run)? --branch verifies a branch with data instead, "
           "unattended; it proves less: no restore path, no point in time")

    def new_project() -> str | None:
        fresh = sorted(sp.project_refs() - known)
        if len(fresh) > 1:
            raise UsageError(f"{len(fresh)} new projects appeared ({', '.join(fresh)}); say "
                             f"which is the restore with --restored-ref")
        return fresh[0] if fresh else None

    try:
        ref = wait_until(new_project, timeout=req.wait, interval=2.0, max_interval=15.0,
                         what="the restored project")
    except WaitTimeout:
        raise CouldNotVerify(f"no new project appeared within {req.wait:.0f} s") from None
    report(f"new project {ref} appeared")
    return snapshot, _Throwaway(ref)


def _wait_for_window(sp: SupabaseProvider, when: datetime, timeout: float,
                     report: Report) -> None:
    """PITR's window trails the present by its RPO (about two minutes on Supabase): wait until
    the point to restore is inside it."""
    def covered() -> bool:
        _b, window, _f = sp.backups()
        if window.latest_time is not None and window.latest_time >= when:
            return True
        report(f"waiting for the recoverable window to reach {when.isoformat()} (it ends at "
               f"{window.latest_time.isoformat() if window.latest_time else 'nothing yet'})")
        return False

    try:
        wait_until(covered, timeout=timeout, interval=5.0, max_interval=30.0,
                   what="the recoverable window")
    except WaitTimeout:
        raise CouldNotVerify(f"the recoverable window did not reach {when.isoformat()} within "
                             f"{timeout:.0f} s") from None


def _branch(sp: SupabaseProvider, result: DrillResult, report: Report) -> _Throwaway:
    name = "spectral-drill-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    report(f"creating branch {name} with data from project {sp.ref}")
    doc = sp.create_data_branch(name)
    ref = doc.get("project_ref")
    if not ref:
        raise CouldNotVerify(f"the branch answer names no project_ref: {sorted(doc)}")
    result.recovery_target = f"data branch {name} (project {ref})"
    return _Throwaway(str(ref), branch_id=str(doc.get("id")))


def _created_at(doc: dict[str, Any]) -> datetime | None:
    text = doc.get("created_at")
    if not text:
        return None
    when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _rpo(result: DrillResult, snapshot: dict[str, Any], restored: dict[str, Any]) -> None:
    """Newest commit at the snapshot against the newest commit in the restore; unknown unless
    track_commit_timestamp is on (it is off on Supabase by default)."""
    source, copy = snapshot["source"].get("last_commit"), restored["source"].get("last_commit")
    if source and copy:
        result.rpo_seconds = max(0.0, (datetime.fromisoformat(source)
                                       - datetime.fromisoformat(copy)).total_seconds())


def _finish(sp: SupabaseProvider, ledger: Ledger, result: DrillResult,
            throwaway: _Throwaway | None, confirmer: Confirmer, report: Report,
            keep: bool) -> None:
    if throwaway is None and result.error:
        report("if a project was already created for this drill, delete it in the dashboard "
               "or verify it with --restored-ref REF")
    if throwaway is not None and (keep or throwaway.keep):
        result.kept = True
        report(f"keeping project {throwaway.ref}" + (" (--keep)" if keep else "")
               + ": delete it within the billing hour")
    elif throwaway is not None:
        mark = time.monotonic()
        try:
            _delete(sp, throwaway, confirmer, report)
            result.timings["teardown"] = time.monotonic() - mark
        except SpectralError as exc:
            result.kept = True
            what = (f"branch {throwaway.branch_id}" if throwaway.branch_id
                    else f"project {throwaway.ref}")
            report(f"{what} NOT deleted ({exc.message}); delete it within the billing hour")
            result.error = result.error or f"throwaway {what} not deleted: {exc.message}"
    ledger.append(EntryKind.DRILL, result.environment,
                  {**result.to_json(), "provider": "supabase"})


def _delete(sp: SupabaseProvider, t: _Throwaway, confirmer: Confirmer, report: Report) -> None:
    details = [f"throwaway {'branch ' + t.branch_id if t.branch_id else 'project'} "
               f"(project {t.ref}); production {sp.ref} is not touched"]
    if t.created_at is not None:
        age = (datetime.now(UTC) - t.created_at).total_seconds()
        details.append(f"created {age / 60:.0f} min ago")
        if age > BILLING_HOUR:
            report(f"warning: project {t.ref} is past its first billing hour "
                   f"({age / 60:.0f} min): another hour is billed")
        elif age > BILLING_WARN:
            report(f"warning: the billing hour of project {t.ref} is nearly up "
                   f"({(BILLING_HOUR - age) / 60:.0f} min left)")
    if not confirmer.confirm(f"Delete the throwaway project {t.ref}?", details):
        raise RefusedError("deletion not confirmed")
    if t.branch_id:
        sp.delete_branch(t.branch_id)
    else:
        sp.delete_project(t.ref)
    report(f"deleted {'branch ' + t.branch_id if t.branch_id else 'project ' + t.ref}")
