"""The functional drill (runbook: "restore the latest managed backup to a throwaway project, run a
schema-checksum comparison across core/worlds/platform, row-count spot-check a few load-bearing
tables, tear down within the billing hour, and log the result"), on any provider.

The drill restores a copy to the point a snapshot of the source saw (a fresh one, or the one
stored at or before --target-time), so a passing drill means the copy equals the source at that
instant: schema, counts and, with --content, every row. How the copy is made is the provider's
business: a local restore into a throwaway instance, or on Supabase a restore to a new project
that an operator clicks (or a branch with data)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from spectral.confirm import Operator, Unattended
from spectral.drills.collations import collation_check
from spectral.drills.drift import check_drift
from spectral.drills.integrity import AmcheckLevel, amcheck_level, check_copy
from spectral.drills.random_point import RandomPoint, pick, refuse_unless_able
from spectral.drills.result import Check, DrillEntry, DrillOutcome, DrillResult, DrillType
from spectral.drills.verify import objectives, verify_against_snapshot
from spectral.environment import Environment
from spectral.errors import (
    BackupDamaged,
    ConnectError,
    CouldNotVerify,
    SpectralError,
    UsageError,
)
from spectral.providers.base import (
    Capability,
    Copy,
    CopyRequest,
    DrillPoint,
    Progress,
    Provider,
    Report,
)
from spectral.recovery_target import RecoveryTarget
from spectral.verify import pinning, snapshots
from spectral.verify.content import ScanProgress
from spectral.verify.document import Fingerprint
from spectral.verify.fingerprint import options_for, take
from spectral.verify.replica import Replica, replica_for


@dataclass(frozen=True)
class DrillRequest:
    drill_type: DrillType = DrillType.FUNCTIONAL
    target_time: datetime | None = None    # compare with the snapshot at or before it
    content: bool = False                  # every row's checksum too
    keep: bool = False                     # leave the copy up afterwards
    copy: CopyRequest = field(default_factory=CopyRequest)
    amcheck: AmcheckLevel | None = None    # None: thorough on the environment's cadence
    random_point: RandomPoint | None = None   # a stored snapshot's point (drills/random_point)


def run_functional(environment: Environment, request: DrillRequest = DrillRequest(), *,
                   operator: Operator | None = None, report: Report = lambda _m: None,
                   progress: Progress | None = None) -> DrillResult:
    """Run one drill end to end and record it in the ledger, whatever happens. A request the
    provider cannot serve is a usage error: nothing runs and nothing is recorded."""
    provider = environment.provider
    if request.random_point is not None:
        refuse_unless_able(provider, request.copy, request.target_time is not None)
    point = provider.drill_point(request.copy, request.target_time)
    fresh = point.compare_at is None and request.random_point is None   # a snapshot to take
    replica = _replica(environment) if fresh else None
    with provider.busy(f"{request.drill_type.value} drill"):
        environment.ledger.check_appendable()   # a drill that could not be recorded is not run
        picked = None
        if request.random_point is not None:   # none old enough: exit 3, nothing recorded
            picked = pick(provider, environment.ledger, request.random_point)
            point = picked.point()
            request = replace(request, copy=replace(request.copy,
                                                    backup_id=picked.candidate.backup.id))
            report(picked.describe())
        drill = _Drill(environment, provider, request, operator or Unattended(), report,
                       progress, replica)
        drill.result.point = picked.to_json() if picked is not None else None
        return drill.run(point)


def _replica(environment: Environment) -> Replica | None:
    """The replica the snapshot is taken on (snapshot_dsn), checked against the primary
    before anything runs: another cluster's server is a usage error (exit 2)."""
    if environment.config.snapshot_dsn is None:
        return None
    if Capability.ANY_TARGET not in environment.provider.capabilities:
        # its copy is restored to a time: the replica's clock, not the time of what it replayed
        raise UsageError(f"snapshot_dsn: {environment.provider.kind} restores to a time only, "
                         f"and a replica's snapshot stands for an LSN",
                         hint="remove snapshot_dsn from this environment")
    with environment.provider.source() as dsn:
        return replica_for(environment.config, dsn, environment.spectral.base_dir)


class _Drill:
    def __init__(self, environment: Environment, provider: Provider, request: DrillRequest,
                 operator: Operator, report: Report, progress: Progress | None,
                 replica: Replica | None = None) -> None:
        self.environment, self.provider, self.request = environment, provider, request
        self.operator, self.report, self.progress = operator, report, progress
        env = environment.config
        self.result = DrillResult(request.drill_type, environment.name,
                                  datetime.now(UTC).isoformat(timespec="seconds"),
                                  rto_target=env.rto_seconds, rpo_target=env.rpo_seconds)
        self.copy: Copy | None = None
        self.keep = request.keep
        self.replica = replica   # where the snapshot is taken (None: the source itself)

    def run(self, point: DrillPoint) -> DrillResult:
        try:
            self._steps(point)
        except BackupDamaged as exc:    # proven damaged: the drill's finding, a FAIL
            self.result.backup_id = self.result.backup_id or exc.backup_id
            self.result.checks.append(Check("backup matches its manifest", DrillOutcome.FAIL,
                                            exc.message, list(exc.problems)))
            self.result.error = exc.message + (f" ({exc.hint})" if exc.hint else "")
        except SpectralError as exc:    # what to do about it goes with it (the ledger, --json)
            self.result.error = exc.message + (f" ({exc.hint})" if exc.hint else "")
        except BaseException as exc:   # Ctrl-C, SIGTERM: still removed and recorded
            self.result.error = f"interrupted ({type(exc).__name__})"
            self._finish()
            raise
        self._finish()
        return self.result

    def _steps(self, point: DrillPoint) -> None:
        result, provider, started = self.result, self.provider, time.monotonic()
        provider.tidy(self.report)
        taken = self._snapshot(point)
        target = point.target or provider.target_after(taken, self.request.copy)
        result.snapshot_taken_at = taken.taken_at
        result.recovery_target = point.label or _described(target, taken)
        result.timings["provision"] = time.monotonic() - started
        self.report(f"restoring a copy up to {result.recovery_target}")
        mark = time.monotonic()
        self.copy = provider.provision_copy(target, self.request.copy, self.operator,
                                            self.report, self.progress)
        result.timings["restore"] = time.monotonic() - mark
        result.backup_id, result.instance = self.copy.backup_id, self.copy.record
        if not point.label and self.copy.target != target.describe():
            result.recovery_target = _described_as(self.copy.target, taken)
        self.report(f"verifying {self.copy.what} against the snapshot of {taken.taken_at}")
        mark = time.monotonic()
        restored = self._verify(taken)
        result.checks.append(collation_check(self.environment.config, taken.collations,
                                             self.copy.read()))
        check_drift(result, self.environment.config, self.environment.ledger.entries(), taken)
        last = provider.restored_through(self.copy, taken, restored)
        method = ("WAL commit records before the recovery point"
                  if provider.wal_archive() is not None
                  else "commit timestamps (track_commit_timestamp)")
        _rpo(result, taken, restored, last, method)
        result.timings["verify"] = time.monotonic() - mark
        result.rto_seconds = time.monotonic() - started
        if not self.copy.counts_as_rto:   # not an incident restore: shown, not held to target
            result.timings["branch_total"] = result.rto_seconds
            result.rto_seconds = None
        objectives(result)
        self._integrity(self.copy)

    def _integrity(self, copy: Copy) -> None:
        """The copy's physical checks (drills/integrity.py), after the RTO was measured."""
        level, why = amcheck_level(self.request.amcheck, self.environment.config,
                                   self.environment.ledger.entries(), datetime.now(UTC),
                                   self.environment.name)
        self.report(f"checking {copy.what} physically (recovery log, pg_amcheck {level.value}"
                    f", checksums)")
        check_copy(self.result, copy.integrity, level, why, kept=self.keep,
                   none_because=self.provider.instead("copy_integrity") or
                   f"{self.provider.kind} offers no physical check of {copy.what}")

    def _snapshot(self, point: DrillPoint) -> Fingerprint:
        if point.compare_at is not None:
            found = snapshots.at_or_before(self.environment.ledger, point.compare_at)
            if found is None:
                what = point.label or f"a restore to {point.compare_at.isoformat()}"
                raise CouldNotVerify(
                    f"no snapshot at or before {point.compare_at.isoformat()} to compare "
                    f"{what} with" + (f"; {point.instead}" if point.instead else ""),
                    hint="spectral dr snapshot (after every backup, from cron, so each has one)")
            return found
        if Capability.ON_DEMAND_BACKUP in self.provider.capabilities and \
                not self.provider.backups():
            raise CouldNotVerify(f"environment {self.environment.name} has no backups to drill",
                                 hint="spectral dr backup")
        self.report(f"taking a snapshot of {self.provider.describe()} to compare the copy with")
        if self.replica is not None:
            self.report(self.replica.describe())
            self.result.checks.append(Check("snapshot on a replica of the source",
                                            DrillOutcome.PASS, self.replica.describe()))
        archive = self.provider.wal_archive()   # its LSN checked against the WAL (pinning.py)
        pin = None if archive is None else pinning.against(archive.flush, archive.commits_near)
        with self.provider.source() as dsn:
            doc = take(self.replica.dsn if self.replica else dsn,
                       options_for(self.environment.config, content=self.request.content,
                                   progress=self._scan_clock("snapshot_scan"), live=True,
                                   on_held=self._held, pin=pin))
            if archive is not None:
                archive.flush()
        snapshots.record(self.environment.ledger, self.environment.name, doc)
        return doc

    def _verify(self, snapshot: Fingerprint) -> Fingerprint:
        copy, result = self.copy, self.result
        assert copy is not None
        try:
            restored = verify_against_snapshot(result, self.environment.config, copy.read(),
                                               snapshot, self.request.content,
                                               self._scan_clock("verify_scan"))
        except ConnectError as exc:
            if copy.rerun is None:
                raise
            self.keep = True
            # the copy is fine, the way in is not: kept, so a rerun can verify it
            raise CouldNotVerify(f"cannot connect to {copy.what}: {exc.message}; it is kept: "
                                 f"{copy.rerun}") from None
        if Capability.RECOVERY_OBSERVED in self.provider.capabilities:
            stopped = copy.reached
            result.checks.append(Check("recovery reached the target",
                                       DrillOutcome.PASS if stopped else DrillOutcome.FAIL,
                                       f"recovery stopped {stopped}" if stopped else
                                       "no recovery stop recorded: it may have ended early"))
        return restored

    def _held(self, seconds: float) -> None:
        self.result.timings["xmin_held"] = seconds   # the snapshot's transactions, open

    def _scan_clock(self, timing: str) -> ScanProgress:
        """Passes a content scan's progress on to the terminal and records how long the scan
        took as `timing` (so a drill's own overhead is its wall time less restore and scans)."""
        started: float | None = None

        def update(stage: str, done: int, total: int) -> None:
            nonlocal started
            if stage == "scan":
                now = time.monotonic()
                started = now if started is None else started
                if done >= total:
                    self.result.timings[timing] = now - started
            if self.progress is not None:
                self.progress(stage, done, total)

        return update

    def _finish(self) -> None:
        copy, result = self.copy, self.result
        if copy is None and result.error and \
                Capability.UNATTENDED_COPY not in self.provider.capabilities:
            self.report("if a copy was already made for this drill, delete it or verify it "
                        "with --restored-ref REF")
        if copy is not None and self.keep:
            self.provider.keep_copy(copy)
            result.kept = True
            self.report(f"keeping {copy.what}: {copy.kept_note}")
        elif copy is not None:
            mark = time.monotonic()
            try:
                self.provider.remove_copy(copy, self.operator, self.report)
                result.timings["teardown"] = time.monotonic() - mark
            except SpectralError as exc:
                result.kept = True
                self.report(f"{copy.what} NOT deleted ({exc.message}): {copy.kept_note}")
                result.error = result.error or f"throwaway {copy.what} not deleted: " \
                                                f"{exc.message}"
        self.environment.ledger.record(result.environment,
                                       DrillEntry(result, self.provider.kind))


def _described(target: RecoveryTarget, snapshot: Fingerprint) -> str:
    return _described_as(target.describe(), snapshot)


def _described_as(text: str, snapshot: Fingerprint) -> str:
    return f"{text} (snapshot of {snapshot.taken_at})"


def _rpo(result: DrillResult, snapshot: Fingerprint, restored: Fingerprint,
         restored_last: datetime | None, method: str) -> None:
    """RPO: the newest commit the source had at the recovery point (recorded in the snapshot)
    against the newest commit the copy holds; zero when the copy holds everything committed
    before the recovery point. Without commit times (track_commit_timestamp off, as on
    Supabase), the newest change in the tables' change columns on both sides."""
    if restored_last is None:
        _rpo_by_change_columns(result, snapshot, restored)
        return
    result.rpo_method = method
    recorded = snapshot.source.last_commit
    # without a recorded commit time (no commit since the server started), the WAL before the
    # recovery point is the source's history too
    source_last = datetime.fromisoformat(recorded) if recorded else restored_last
    result.rpo_seconds = max(0.0, (source_last - restored_last).total_seconds())


def _rpo_by_change_columns(result: DrillResult, snapshot: Fingerprint,
                           restored: Fingerprint) -> None:
    def newest(doc: Fingerprint) -> datetime | None:
        stamps = [datetime.fromisoformat(str(t.last_change)) for t in doc.tables.values()
                  if t.last_change and "T" in str(t.last_change)]
        stamps = [s if s.tzinfo else s.replace(tzinfo=UTC) for s in stamps]
        return max(stamps) if stamps else None

    source, copy = newest(snapshot), newest(restored)
    if source is None or copy is None:
        return
    result.rpo_seconds = max(0.0, (source - copy).total_seconds())
    result.rpo_method = "the newest value of each table's change column"
