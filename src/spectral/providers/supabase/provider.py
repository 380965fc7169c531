"""The Supabase provider: backups, the recoverable window and in-place PITR of a project through
the Management API, and drill copies made the way Supabase allows (providers/supabase/copies.py):
a restore to a new project that an operator clicks, or a branch with data."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spectral.confirm import Operator
from spectral.errors import CheckFailed, RefusedError, UsageError
from spectral.providers.base import (
    Backup,
    BackupKind,
    Capability,
    Copy,
    CopyMethod,
    CopyRequest,
    DrillPoint,
    InPlaceResult,
    Progress,
    ReadinessItem,
    RecoverableWindow,
    Report,
    Verification,
)
from spectral.providers.capabilities import NO_OPTIONS, refuse_options
from spectral.providers.capabilities import Options as CapOptions
from spectral.providers.supabase.api import SupabaseApi
from spectral.recovery_target import LatestTarget, RecoveryTarget, TimeTarget
from spectral.verify.compare import Outcome, compare
from spectral.verify.document import Fingerprint
from spectral.verify.fingerprint import Options, take
from spectral.waits import WaitTimeout, wait_until

INSTEAD = {
    "": "on Supabase, which keeps its own backups and WAL: spectral dr backups, dr drill "
        "functional (guided), dr playbook run, dr activate-pitr",
    "wal_archive": "Supabase keeps its WAL to itself: restore to just before the damage by "
                   "time instead (spectral dr playbook run self-inflicted --target-time T)",
    "in_place_undo": "an in-place restore runs only from a playbook, with confirmation: "
                     "spectral dr playbook run self-inflicted --target-time T (a restored "
                     "copy: spectral dr drill functional guides it)",
    "copy_integrity": "a Supabase project has no data directory to read and its server log "
                      "is not the drill's to read: its schema, counts and content are compared, "
                      "its pages are not checked",
}


class SupabaseProvider(SupabaseApi):
    kind = "supabase"
    # no WAL, no undo of an in-place PITR, copies need an operator (or prove less: a branch),
    # no backups on demand, recovery not observable, targets are times
    capabilities: frozenset[Capability] = frozenset()

    def __init__(self, client: Any, project_ref: str, dsn: str, schemas: tuple[str, ...],
                 state_dir: Path | None = None, report: Report | None = None) -> None:
        super().__init__(client, project_ref, dsn)
        self.schemas, self.state_dir, self.report = schemas, state_dir, report

    def describe(self) -> str:
        return f"Supabase project {self.ref}"

    def busy(self, what: str) -> contextlib.AbstractContextManager[None]:
        if self.state_dir is None:
            return contextlib.nullcontext()
        from spectral.envlock import operation_lock

        return operation_lock(self.state_dir, what, report=self.report)

    @contextlib.contextmanager
    def source(self) -> Iterator[str]:
        yield self.dsn

    def running_source(self) -> str | None:
        return self.dsn

    # ---- backups and the window ---------------------------------------------------------
    def backup(self, options: CapOptions = NO_OPTIONS) -> Backup:
        raise UsageError("Supabase takes the project's backups itself (daily, and continuous "
                         "WAL with the PITR add-on); spectral cannot take one on demand",
                         hint="spectral dr backups lists them")

    def backups(self) -> list[Backup]:
        return [_backup(b) for b in self.backups_doc().get("backups", [])]

    def window(self) -> RecoverableWindow:
        return _window(self.backups_doc())

    def pitr_enabled(self) -> bool:
        return bool(self.backups_doc().get("pitr_enabled"))

    def live_lineage(self) -> set[str] | None:
        return None

    def archive_status(self) -> dict[str, Any] | None:
        doc = self.backups_doc()
        window = _window(doc)
        return {"pitr_enabled": bool(doc.get("pitr_enabled")),
                "window_end": window.latest_time.isoformat() if window.latest_time else None}

    def pitr_readiness(self, operator: Operator, report: Report,
                       options: CapOptions = NO_OPTIONS) -> list[ReadinessItem]:
        from spectral.providers.supabase.addon import readiness

        refuse_options(options, {"addon": "the PITR add-on to buy (pitr_7, ...)"},
                       self.describe())
        addon = options.get("addon")
        return readiness(self, None if addon is None else str(addon), operator, report)

    # ---- what it cannot do: no WAL, no undo, no instances, no streaming -------------------
    def instead(self, capability: str) -> str:
        return INSTEAD.get(capability, INSTEAD[""])

    def wal_archive(self) -> None:
        return None

    def backup_options(self) -> None:
        return None

    def retention(self) -> None:
        return None

    def restored_instances(self) -> None:
        return None

    def in_place_undo(self) -> None:
        return None

    def wal_stream(self) -> None:
        return None

    def wal_status(self) -> None:
        return None

    # ---- drill copies (providers/supabase/copies.py) --------------------------------------
    def tidy(self, report: Report) -> None:
        """Copies are projects the operator sees in the dashboard; nothing is removed unasked."""

    def drill_point(self, request: CopyRequest, at: datetime | None) -> DrillPoint:
        if request.backup_id:
            raise UsageError("--backup is for local environments; on Supabase the operator picks "
                             "the backup the tool names")
        if request.existing is not None and request.existing == self.ref:
            raise UsageError(f"--restored-ref {self.ref} is the environment's own project; a "
                             f"drill verifies a restored copy, never production")
        if at is not None and not request.existing:
            raise UsageError("on Supabase, --target-time says when --restored-ref was restored to")
        if request.existing:
            label = (f"project {request.existing} restored by the operator"
                     + (f" to {at.isoformat()}" if at else " (compared with now)"))
            return DrillPoint(TimeTarget(at) if at else None, at, label)
        if request.method is CopyMethod.BRANCH:
            self.entitled("project_cloning", "a branch with data",
                          "drill a restore to a new project (without --branch)")
            return DrillPoint()
        self.entitled("backup.restore_to_new_project", "restoring a backup to a new project",
                      "--branch verifies a branch with data instead (it proves less)")
        if self.pitr_enabled():
            return DrillPoint()
        from spectral.providers.supabase.copies import newest_daily_backup

        newest = newest_daily_backup(self)
        return DrillPoint(TimeTarget(newest.stop_time), newest.stop_time,
                          f"the daily backup {newest.id} of {newest.stop_time.isoformat()}",
                          instead="or drill a branch with data now (--branch)")

    def target_after(self, snapshot: Fingerprint, request: CopyRequest) -> RecoveryTarget:
        if request.method is CopyMethod.BRANCH or request.existing:
            return LatestTarget()
        # the first whole second after the snapshot: the restore holds what the snapshot saw
        taken = datetime.fromisoformat(snapshot.taken_at).timestamp()
        return TimeTarget(datetime.fromtimestamp(math.ceil(taken), UTC))

    def provision_copy(self, target: RecoveryTarget, request: CopyRequest, operator: Operator,
                       report: Report, progress: Progress | None = None) -> Copy:
        from spectral.providers.supabase.copies import provision

        return provision(self, target, request, operator, report)

    def keep_copy(self, copy: Copy) -> None:
        """A kept project stays in the dashboard; the drill says to delete it within the hour."""

    def remove_copy(self, copy: Copy, operator: Operator, report: Report) -> None:
        from spectral.providers.supabase.copies import remove

        remove(self, copy, operator, report)

    def restored_through(self, copy: Copy, snapshot: Fingerprint,
                         restored: Fingerprint) -> datetime | None:
        """The newest commit timestamp in the copy: known only with track_commit_timestamp
        (off on Supabase by default)."""
        last = restored.source.last_commit
        return datetime.fromisoformat(last) if last and snapshot.source.last_commit \
            else None

    # ---- restores for incidents ---------------------------------------------------------
    def restore_new(self, target: RecoveryTarget, operator: Operator, report: Report) -> Copy:
        from spectral.providers.supabase.copies import provision

        return provision(self, target, CopyRequest(), operator, report, keep=True)

    def restore_in_place(self, target: RecoveryTarget, *, confirmed: bool,
                         report: Report | None = None,
                         progress: Progress | None = None) -> InPlaceResult:
        if not isinstance(target, TimeTarget):
            raise UsageError("Supabase restores to a time: pass --target-time, just before the "
                             "damage")
        return self.pitr_in_place(target.at, confirmed=confirmed,
                                  report=report or (lambda _m: None))

    def pitr_in_place(self, when: datetime, *, confirmed: bool, report: Report,
                      timeout: float = 3600) -> InPlaceResult:
        """Check the target is in the window, snapshot first, restore, wait for health, verify."""
        if not confirmed:
            raise RefusedError("an in-place PITR rewinds the production database; it needs "
                               "--yes (and belongs in a playbook run)")
        doc = self.backups_doc()
        path = f"/projects/{self.ref}/database/backups/restore-pitr"
        body = {"recovery_time_target_unix": int(when.timestamp())}
        if not doc.get("pitr_enabled"):   # checked here: a request is never sent to find out
            raise CheckFailed(f"PITR is not enabled for this project. (project {self.ref}: "
                              f"spectral dr activate-pitr --pitr-addon pitr_7 enables it)")
        window = _window(doc)
        if window.empty or not (window.earliest_time and window.latest_time
                                and window.earliest_time <= when <= window.latest_time):
            raise UsageError(f"{when.isoformat()} is outside the recoverable window: "
                             f"{window.describe()}")
        report("taking a fingerprint snapshot before the restore")
        before = take(self.dsn, Options(self.schemas))
        report(f"requesting PITR to {when.isoformat()}")
        self.client.post(path, body)
        started = time.monotonic()
        try:   # the status can read ACTIVE_HEALTHY for a moment before RESTORING shows
            # polled every second or two: a fast restore's RESTORING must not be missed (the
            # wait would then last its whole minute)
            wait_until(lambda: self.project(self.ref).get("status") != "ACTIVE_HEALTHY",
                       timeout=60, interval=1.0, max_interval=2.0, what="the restore to start")
        except WaitTimeout:
            report("the project never left ACTIVE_HEALTHY; verifying what it holds now")
        self.wait_healthy(self.ref, timeout=timeout, report=report)
        cmp = compare(before, take(self.dsn, Options(self.schemas)))
        same = all(s.outcome is Outcome.MATCH for s in cmp.schemas)
        return InPlaceResult(self.ref, self.describe(), when.isoformat(),
                             time.monotonic() - started,
                             ("schemas match" if same else "SCHEMAS DIFFER")
                             + " the snapshot taken before",
                             tables={t.name: (t.rows[0], t.rows[1]) for t in cmp.tables})


def _backup(b: dict[str, Any]) -> Backup:
    at = datetime.fromisoformat(str(b.get("inserted_at")).replace("Z", "+00:00"))
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    status = str(b.get("status"))
    return Backup(str(b.get("id")), BackupKind.FULL, None, "-", "-", at, at, 0, 0, 0.0, "",
                  Verification.NOT_VERIFIED, "taken and kept by Supabase", status,
                  bool(b.get("is_physical_backup")))


def _window(doc: dict[str, Any]) -> RecoverableWindow:
    data = doc.get("physical_backup_data") or {}
    lo, hi = data.get("earliest_physical_backup_date_unix"), \
        data.get("latest_physical_backup_date_unix")
    if lo is None or hi is None:
        return RecoverableWindow(None, None, None, None, None)
    return RecoverableWindow(datetime.fromtimestamp(lo, UTC), "-",
                             datetime.fromtimestamp(hi, UTC), "-", None)

