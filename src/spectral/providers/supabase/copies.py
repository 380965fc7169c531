"""Drill copies on Supabase. "Restore to a new project" has no public endpoint, so an operator
clicks it: the tool names exactly what to click and which point in time or backup to pick,
waits for the new project (or takes the one given with --restored-ref) and for it to be
healthy. A branch with data is made and deleted through the API, unattended, but proves less
(BRANCH_NOTE). Every copy is deleted only after confirmation, with the billing hour in view."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from spectral.confirm import Operator
from spectral.errors import CouldNotVerify, RefusedError, UsageError
from spectral.providers.base import Backup, Copy, CopyMethod, CopyRequest, Report
from spectral.recovery_target import LatestTarget, RecoveryTarget, TimeTarget
from spectral.verify.by_query import QueryReader
from spectral.waits import WaitTimeout, wait_until

if TYPE_CHECKING:
    from spectral.providers.supabase.provider import SupabaseProvider

BILLING_HOUR = 3600.0
BILLING_WARN = 50 * 60.0
BRANCH_NOTE = ("a branch with data proves that the project's data can be materialised into a "
               "separate database and matches the snapshot's schemas and counts; it does not "
               "exercise the dashboard's restore to a new project, nor a point in time, so its "
               "time is not the RTO of an incident restore")


@dataclass(frozen=True)
class ProjectCopy:
    """What the ledger keeps of a Supabase copy: the project, and the branch when it is one
    (deleted as a branch, by the project's ref)."""

    project_ref: str
    branch_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"project_ref": self.project_ref, "branch_id": self.branch_id}

    def when_kept(self) -> str:
        return f"kept: project {self.project_ref}; delete it within the billing hour"


def provision(sp: SupabaseProvider, target: RecoveryTarget, request: CopyRequest,
              operator: Operator, report: Report, *, keep: bool = False) -> Copy:
    if request.method is CopyMethod.BRANCH:
        copy = _branch(sp, report)
    elif request.existing:
        copy = _copy(sp, request.existing, None, f"project {request.existing}, restored by the "
                     f"operator", target)
    else:
        copy = _guided(sp, target, request, operator, report)
    sp.wait_healthy(copy.id, timeout=request.wait, report=report,
                    what="restored project" if not keep else "new project")
    copy.dsn = request.existing_dsn or ""
    if not copy.dsn:     # its password is not ours to guess: read it through the API
        ref = copy.id
        copy.reader = QueryReader(lambda query: sp.read_only_query(ref, query),
                                  f"{copy.what} (through the read-only query endpoint)")
    return copy


def _copy(sp: SupabaseProvider, ref: str, branch_id: str | None, target_text: str,
          target: RecoveryTarget | None) -> Copy:
    what = f"branch {branch_id} (project {ref})" if branch_id else f"project {ref}"
    when = f" --target-time {target.value}" if isinstance(target, TimeTarget) else ""
    return Copy(ref, "", what, None, target_text, ProjectCopy(ref, branch_id),
                counts_as_rto=branch_id is None,
                rerun=f"spectral dr drill functional --restored-ref {ref}{when}",
                kept_note=f"project {ref}: delete it within the billing hour")


def newest_daily_backup(sp: SupabaseProvider) -> Backup:
    done = [b for b in sp.backups() if b.usable]
    if not done:
        raise CouldNotVerify(f"project {sp.ref} has no completed backup to drill")
    return max(done, key=lambda b: b.stop_time)


def _guided(sp: SupabaseProvider, target: RecoveryTarget, request: CopyRequest,
            operator: Operator, report: Report) -> Copy:
    """Tell the operator what to click, then wait for the project that click creates."""
    if isinstance(target, LatestTarget):     # the newest point there is to restore
        latest = sp.window().latest_time if sp.pitr_enabled() else None
        target = TimeTarget(latest or newest_daily_backup(sp).stop_time)
    if not isinstance(target, TimeTarget):
        raise UsageError(f"Supabase restores a new project to a time or a daily backup, not "
                         f"to {target.describe()}")
    when = target.at
    if sp.pitr_enabled():
        _wait_for_window(sp, when, request.wait, report)
        choice = (f"the Point in Time tab, recovery time {when.strftime('%Y-%m-%d %H:%M:%S')} "
                  f"UTC (unix {int(when.timestamp())})")
        text = f"time {when.isoformat()}"
    else:
        backup = next((b for b in sp.backups() if b.usable and b.stop_time == when), None)
        if backup is None:
            raise UsageError(f"project {sp.ref} has no PITR and no daily backup taken at "
                             f"{when.isoformat()}")
        choice = f"the Scheduled backups tab, the backup of {when.isoformat()}"
        text = f"daily backup {backup.id} of {when.isoformat()}"
    known = sp.project_refs()
    operator.perform("restore to a new project, in the Supabase dashboard", [
        f"open project {sp.ref} -> Database -> Backups -> Restore to a new project",
        f"choose {choice}",
        "keep the same region and confirm: Supabase creates a new project"])
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
        ref = wait_until(new_project, timeout=request.wait, interval=2.0, max_interval=15.0,
                         what="the restored project")
    except WaitTimeout:
        raise CouldNotVerify(f"no new project appeared within {request.wait:.0f} s") from None
    report(f"new project {ref} appeared")
    copy = _copy(sp, ref, None, text, target)
    copy.backup_id = text
    return copy


def _wait_for_window(sp: SupabaseProvider, when: datetime, timeout: float,
                     report: Report) -> None:
    """PITR's window trails the present by its RPO (about two minutes on Supabase): wait until
    the point to restore is inside it."""
    def covered() -> bool:
        window = sp.window()
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


def _branch(sp: SupabaseProvider, report: Report) -> Copy:
    report(f"note: {BRANCH_NOTE}")
    name = "spectral-drill-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    report(f"creating branch {name} with data from project {sp.ref}")
    doc = sp.create_data_branch(name)
    ref = doc.get("project_ref")
    if not ref:
        raise CouldNotVerify(f"the branch answer names no project_ref: {sorted(doc)}")
    return _copy(sp, str(ref), str(doc.get("id")), f"data branch {name} (project {ref})", None)


def _created_at(doc: dict[str, object]) -> datetime | None:
    text = doc.get("created_at")
    if not text:
        return None
    when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def remove(sp: SupabaseProvider, copy: Copy, operator: Operator, report: Report) -> None:
    assert isinstance(copy.record, ProjectCopy), "a copy this provider made"
    branch_id = copy.record.branch_id
    details = [f"throwaway {'branch ' + str(branch_id) if branch_id else 'project'} "
               f"(project {copy.id}); production {sp.ref} is not touched"]
    created = _created_at(sp.project(copy.id))
    if created is not None:
        age = (datetime.now(UTC) - created).total_seconds()
        details.append(f"created {age / 60:.0f} min ago")
        if age > BILLING_HOUR:
            report(f"warning: project {copy.id} is past its first billing hour "
                   f"({age / 60:.0f} min): another hour is billed")
        elif age > BILLING_WARN:
            report(f"warning: the billing hour of project {copy.id} is nearly up "
                   f"({(BILLING_HOUR - age) / 60:.0f} min left)")
    if not operator.confirm(f"Delete the throwaway project {copy.id}?", details):
        raise RefusedError("deletion not confirmed")
    if branch_id:
        sp.delete_branch(copy.id)      # the branch's project ref
    else:
        sp.delete_project(copy.id)
    report(f"deleted {'branch ' + str(branch_id) if branch_id else 'project ' + copy.id}")
