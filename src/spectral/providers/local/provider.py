"""The managed provider: an environment whose PostgreSQL the tool runs itself (the host,
environment.py) composed with a repository strategy for its backups and WAL archive
(providers/repository.py: the local repository, strategy.py, or pgBackRest's). Everything the
`Provider` protocol offers, and the capability objects behind `dr restore`, `dr instances`,
`dr teardown`, `dr expire`, `dr wal` (capabilities.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from spectral.confirm import Confirmer, Operator
from spectral.errors import RefusedError, SpectralError, UsageError
from spectral.ledger.outbox import Outbox
from spectral.providers.base import (
    Backup,
    Capability,
    Copy,
    CopyMethod,
    CopyRequest,
    DrillPoint,
    InPlaceResult,
    Instance,
    Progress,
    ReadinessItem,
    RecoverableWindow,
    Report,
)
from spectral.providers.capabilities import (
    NO_OPTIONS,
    BackupOptions,
    Options,
    Retention,
    UndoOutcome,
    WalStatus,
    WalStream,
    refuse_options,
)
from spectral.providers.local import window as window_mod
from spectral.providers.local.archive import LocalWalArchive
from spectral.providers.local.capabilities import (
    LocalInPlace,
    LocalInstances,
    LocalRetention,
    LocalWalStatus,
    LocalWalStream,
)
from spectral.providers.local.environment import LocalEnvironment
from spectral.providers.local.instances import Registry
from spectral.providers.local.restore import RestoreSteps
from spectral.providers.local.throwaway import Throwaways
from spectral.providers.local.wal import Segment, parse_lsn
from spectral.recovery_target import LsnTarget, RecoveryTarget, TimeTarget
from spectral.verify.document import Fingerprint

if TYPE_CHECKING:
    from spectral.providers.local.inplace import InPlace


class ManagedProvider:
    """A managed cluster: the host `local` and its repository strategy (`local.strategy`)."""

    capabilities = frozenset(Capability)

    def __init__(self, local: LocalEnvironment, report: Report | None = None) -> None:
        self.local = local
        if report is not None:
            local.report = report
        self.outbox = Outbox(local.paths.state_dir)   # what it owes the environment's ledger
        self.report = report
        self.bins = local.bins
        self.strategy = local.strategy
        self.kind: str = self.strategy.kind
        self.repo = self.strategy.repository()
        self.restorer = self.strategy.restorer(NO_OPTIONS)

    def describe(self) -> str:
        return self.strategy.describe(self.local.name)

    @contextlib.contextmanager
    def busy(self, what: str) -> Iterator[None]:
        """The operation lock, and then the recovery of an operation a killed run left."""
        from spectral.envlock import operation_lock

        with operation_lock(self.local.paths.state_dir, what, report=self.report):
            self.recover_interrupted()
            yield

    def recover_if_idle(self) -> None:
        """`local up`: put right what a killed run left, unless another command holds the
        operation lock (then its owner lives, and nothing was left by it)."""
        from spectral.envlock import operation_lock

        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(operation_lock(self.local.paths.state_dir, "local up",
                                                   wait=False))
            except RefusedError:
                return
            self.recover_interrupted()

    def recover_interrupted(self) -> None:
        """An in-place restore or undo whose process was killed is rolled back (or finished,
        once committed), saying so in one line. Runs under the operation lock."""
        from spectral.providers.local.intent import Journal, recover_in_place

        if not Journal(self.local.paths.cluster_dir).path.exists():
            return      # nothing recorded: the in-place machinery is not even imported
        done = recover_in_place(self.local, self.in_place)
        if done is None:
            return
        self.local.tell(done.message)
        if done.restart:   # the server ran before the interrupted operation
            self.local.up()

    @contextlib.contextmanager
    def source(self) -> Iterator[str]:
        with self.local.session() as cluster:
            yield cluster.conninfo()

    def running_source(self) -> str | None:
        cluster = self.local.cluster() if self.local.exists() else None
        return cluster.conninfo() if cluster is not None and cluster.is_running() else None

    # ---- backups, the window, the archive ---------------------------------------------------
    def backup(self, options: Options = NO_OPTIONS, *, incremental: bool = False) -> Backup:
        """A full backup, or with {"type": "incr"} (`incremental`) an incremental one."""
        options = self.backup_options().parse(
            {**options, "type": "incr"} if incremental else options)
        with self.busy("backup"), self.local.session() as cluster:
            self.sweep_unlisted()
            with cluster.connect() as conn:
                row = conn.execute("select current_setting('server_version')").fetchone()
            self.local.prepare_repository()
            return self.strategy.take(cluster.conninfo(), str(row[0]) if row else "?", options)

    def backups(self) -> list[Backup]:
        self.strategy.forget()
        return self.repo.read()

    def window(self, *, times: bool = True) -> RecoverableWindow:
        """`times=False`: without its end times (window.needs_times)."""
        from spectral.providers.local.tail import with_tail_gap

        self.strategy.forget()
        return with_tail_gap(window_mod.compute(self.bins, self.repo, times=times),
                             self.source_tail())

    def source_tail(self) -> list[Segment]:
        """Segments only in the stopped server's pg_wal (a crash leaves its last commits
        there); none while it runs, when the archive is flushed instead."""
        from spectral.providers.local.tail import unarchived

        try:
            cluster = self.local.cluster() if self.local.exists() else None
        except SpectralError:     # the source is gone (the disaster being recovered from)
            return []
        if cluster is None or cluster.is_running():
            return []
        return unarchived(self.bins, cluster.data_dir, self.repo)

    def pitr_enabled(self) -> bool:
        return True    # every segment is archived; `dr wal stream` narrows the RPO further

    def live_lineage(self) -> set[str] | None:
        return window_mod.lineage(self.repo)

    def instead(self, capability: str) -> str:
        return self.strategy.instead(capability)

    # ---- what it can do, as objects (capabilities.py) ----------------------------------------
    def wal_archive(self) -> LocalWalArchive:
        return LocalWalArchive(self.local, self.bins, self.repo)

    def backup_options(self) -> BackupOptions:
        return self.strategy.backup_options()

    def retention(self) -> Retention | None:
        return LocalRetention(self)

    def restored_instances(self) -> LocalInstances:
        return LocalInstances(self)

    def in_place_undo(self) -> LocalInPlace:
        return LocalInPlace(self)

    def wal_stream(self) -> WalStream | None:
        return LocalWalStream(self) if self.strategy.streams_wal else None

    def wal_status(self) -> WalStatus | None:
        return LocalWalStatus(self)

    def _flushed_window(self, target: RecoveryTarget | None = None) -> RecoverableWindow:
        self.flush_archive()   # a target may be in the segment being written
        return self.window(times=window_mod.needs_times(target))

    def flush_archive(self) -> str | None:
        from spectral.providers.local.tail import archive_source_tail

        archive = self.wal_archive()
        done = archive.flush()
        tail = self.source_tail() if done is None else []
        return archive_source_tail(self.local, archive, tail, self.report) if tail else done

    def archive_status(self) -> dict[str, Any] | None:
        from spectral.providers.local.stream import wal_status

        if self.running_source() is None:
            return None
        info = wal_status(self.local.cluster(), self.local.paths.repo_dir / "stream")
        return {"rpo_bytes": info["rpo_bytes"], "rpo_seconds": info["rpo_seconds"],
                "streaming": info["stream"] is not None}

    def pitr_readiness(self, operator: Operator, report: Report,
                       options: Options = NO_OPTIONS) -> list[ReadinessItem]:
        refuse_readiness_options(options)
        cluster = self.local.cluster() if self.local.exists() else None
        return self.strategy.readiness(cluster if cluster is not None and cluster.is_running()
                                       else None)

    # ---- copies for drills ------------------------------------------------------------------
    def tidy(self, report: Report) -> None:
        self.throwaways.tidy(report)

    def drill_point(self, request: CopyRequest, at: datetime | None) -> DrillPoint:
        if request.method is not CopyMethod.RESTORE or request.existing or request.existing_dsn:
            raise UsageError(f"{self.describe()} restores its own copies: --restored-ref, "
                             f"--restored-dsn and --branch are for Supabase environments")
        if request.backup_id is not None:
            known = [b.id for b in self.backups()]
            if request.backup_id not in known:
                raise UsageError(f"--backup {request.backup_id!r}: no such backup (known: "
                                 f"{', '.join(known) or 'none'}; spectral dr backups)")
        if at is None:
            return DrillPoint()
        return DrillPoint(TimeTarget(at), at, f"time {at.isoformat()}")

    def target_after(self, snapshot: Fingerprint, request: CopyRequest) -> RecoveryTarget:
        # exclusive: the state the snapshot saw is every record before its LSN; a commit
        # that starts exactly there came after it (PostgreSQL's inclusive LSN target would
        # replay it)
        return LsnTarget(parse_lsn(snapshot.source.lsn), exclusive=True)

    def provision_copy(self, target: RecoveryTarget, request: CopyRequest, operator: Operator,
                       report: Report, progress: Progress | None = None) -> Copy:
        inst = self.restore(target, backup_id=request.backup_id, progress=progress, keep=False)
        return self._copy(inst)

    def _copy(self, inst: Instance) -> Copy:
        return self.throwaways.copy(inst)

    def keep_copy(self, copy: Copy) -> None:
        self.registry.keep(copy.id)

    def remove_copy(self, copy: Copy, operator: Operator, report: Report) -> None:
        self.registry.teardown(copy.id)

    def restored_through(self, copy: Copy, snapshot: Fingerprint,
                         restored: Fingerprint) -> datetime | None:
        return self.wal_archive().newest_commit_before(snapshot.source.lsn)

    # ---- restores ---------------------------------------------------------------------------
    def restore_new(self, target: RecoveryTarget, operator: Operator, report: Report) -> Copy:
        return self._copy(self.restore(target, keep=True))

    def restore(self, target: RecoveryTarget, *, pause: bool = False,
                progress: Progress | None = None, backup_id: str | None = None,
                keep: bool = True, options: Options = NO_OPTIONS) -> Instance:
        """Restore into a new instance. `keep=False` marks it as owned by this process (a
        drill): if the process dies, the next run finds it orphaned and removes it."""
        restorer = self.restorer_for(self.backup_options().parse(options, restore=True))
        with self.busy("restore"):
            return self._restore(target, pause=pause, progress=progress, backup_id=backup_id,
                                 keep=keep, restorer=restorer)

    def restorer_for(self, options: Options) -> RestoreSteps:
        """The restorer for a restore with these (parsed) options."""
        return self.strategy.restorer(options) if options else self.restorer

    def _restore(self, target: RecoveryTarget, *, pause: bool, progress: Progress | None,
                 backup_id: str | None, keep: bool, restorer: RestoreSteps) -> Instance:
        return self.throwaways.restore(target, restorer, pause=pause, progress=progress,
                                       backup_id=backup_id, keep=keep)

    @property
    def throwaways(self) -> Throwaways:
        return Throwaways(self.bins, self.repo, self.local.paths.instances_dir,
                          self.local.database, self._flushed_window, self.local.server_env,
                          timed_window=self.window)

    def restore_in_place(self, target: RecoveryTarget, *, confirmed: bool,
                         report: Report | None = None,
                         progress: Progress | None = None) -> InPlaceResult:
        return self.in_place_undo().restore(target, confirmed=confirmed, progress=progress)

    # ---- retention and streaming ------------------------------------------------------------
    def sweep_unlisted(self, *, report: bool = True) -> list[str]:
        """Backup directories a killed expiry or backup left unlisted, removed (expire.py)."""
        gone = self.strategy.sweep_unlisted()
        if gone and report:
            self.local.tell(f"removed {len(gone)} backup director(ies) the catalog does not "
                            f"list (left by a run that was killed): {', '.join(gone)}")
        return gone

    # ---- local only: throwaway instances and in-place undo --------------------------------
    @property
    def registry(self) -> Registry:
        return self.throwaways.registry

    @property
    def in_place(self) -> InPlace:
        return self.in_place_with(self.restorer)

    def in_place_with(self, restorer: RestoreSteps) -> InPlace:
        from spectral.providers.local.inplace import InPlace

        return InPlace(self.local, self.repo, restorer, self._flushed_window, self.busy,
                       self.outbox)

    # conveniences over the capability objects (the library's callers and tests use them)
    def instances(self) -> list[Instance]:
        return self.restored_instances().listed()

    def teardown(self, instance_id: str) -> bool:
        return self.restored_instances().teardown(instance_id)

    def orphans(self) -> list[str]:
        return self.restored_instances().orphans()

    def is_running(self, inst: Instance) -> bool:
        return self.restored_instances().is_running(inst)

    def undo_in_place(self, operator: Confirmer | None = None) -> UndoOutcome:
        return self.in_place_undo().undo(operator)


LocalProvider = ManagedProvider   # the name the library's callers and tests know


def refuse_readiness_options(options: Options) -> None:
    if "addon" in options:
        raise UsageError("--pitr-addon is for Supabase environments")
    refuse_options(options, {}, "a managed environment's PITR readiness")
