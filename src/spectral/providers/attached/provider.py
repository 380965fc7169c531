"""The attached provider: a live server spectral only connects to (its DSN; never started,
stopped or reconfigured, never written to but by a confirmed salvage), the team's backups read
through an `AttachedRepository`, and restores into throwaway instances on this host with
`pg_bin_dir`'s binaries. Everything that would write to the team's repository or server (a
backup, an expiry, an in-place restore, a WAL stream) is refused in one line, exit 2."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from spectral.config.secrets import resolve_dsn
from spectral.confirm import Operator
from spectral.errors import ConnectError, CouldNotVerify, UsageError
from spectral.pg.binaries import PgBinaries
from spectral.pg.conn import connect
from spectral.providers.attached.anchor import (
    check_same_system,
    check_timeline,
    past_archive,
    position,
    unarchived_bytes,
    unknown_after_archive,
    wait_archived,
)
from spectral.providers.attached.strategy import AttachedRepository
from spectral.providers.base import (
    Backup,
    Capability,
    Copy,
    CopyMethod,
    CopyRequest,
    DrillPoint,
    Instance,
    Progress,
    ReadinessItem,
    RecoverableWindow,
    Report,
    Verification,
)
from spectral.providers.capabilities import NO_OPTIONS, Options, refuse_options
from spectral.providers.local import window as window_mod
from spectral.providers.local.archive import ArchiveReader
from spectral.providers.local.capabilities import LocalInstances
from spectral.providers.local.instances import Registry
from spectral.providers.local.targets import locate
from spectral.providers.local.throwaway import Throwaways
from spectral.providers.local.wal import parse_lsn
from spectral.recovery_target import LsnTarget, RecoveryTarget, TargetKind, TimeTarget
from spectral.verify.document import Fingerprint

WRITES = {"on_demand_backup": "a backup", "retention": "an expiry",
          "in_place_undo": "an in-place restore", "wal_stream": "a WAL stream",
          "backup_options": "a backup"}


class AttachedProvider:
    """Backups a team already has, proven read-only (module docstring)."""

    capabilities = frozenset({Capability.UNATTENDED_COPY, Capability.RECOVERY_OBSERVED,
                              Capability.ANY_TARGET, Capability.CHOSEN_BACKUP})

    def __init__(self, name: str, dsn: str, base_dir: Path | None, bins: PgBinaries,
                 state_dir: Path, strategy: AttachedRepository,
                 report: Report | None = None) -> None:
        self.name, self.dsn, self.base_dir, self.bins = name, dsn, base_dir, bins
        self.state_dir, self.strategy, self.report = state_dir, strategy, report
        self.kind: str = strategy.kind
        self.repo = strategy.repository()

    @property
    def database(self) -> str:
        """The live database's name: the throwaway copies are read under it."""
        from psycopg.conninfo import conninfo_to_dict

        return str(conninfo_to_dict(resolve_dsn(self.dsn, self.base_dir)).get("dbname")
                   or "postgres")

    def describe(self) -> str:
        return f"environment {self.name} (attached: {self.strategy.describe()})"

    def instead(self, capability: str) -> str:
        what = WRITES.get(capability, capability.replace("_", " "))
        return (f"spectral only reads the backups of an attached environment and never writes "
                f"to its repository or server: {what} is the team's own tool's to make")

    def refuse(self, capability: str) -> NoReturn:
        raise UsageError(f"{self.describe()}: {WRITES.get(capability, capability)} would write "
                         f"to the team's repository or server, which spectral never does",
                         hint=self.instead(capability))

    @contextlib.contextmanager
    def busy(self, what: str) -> Iterator[None]:
        from spectral.envlock import operation_lock

        with operation_lock(self.state_dir, what, report=self.report):
            yield

    @contextlib.contextmanager
    def source(self) -> Iterator[str]:
        yield resolve_dsn(self.dsn, self.base_dir)

    def running_source(self) -> str | None:
        return resolve_dsn(self.dsn, self.base_dir)

    # ---- the team's backups, read ----------------------------------------------------------
    def backup(self, options: Options = NO_OPTIONS) -> NoReturn:
        self.refuse("on_demand_backup")

    def backups(self) -> list[Backup]:
        self.strategy.forget()
        return self.repo.read()

    def window(self) -> RecoverableWindow:
        self.strategy.forget()
        self.check_major(None)      # another major's pg_waldump reads every segment as damage
        with self.source() as dsn:
            check_timeline(dsn, window_mod.archive_view(self.repo).timeline)
        return window_mod.compute(self.bins, self.repo)

    def wait_for(self, lsn: int) -> None:
        """Until the team's archive holds every record before `lsn` (bounded; anchor.py)."""
        with self.source() as dsn:
            wait_archived(self.repo, self.strategy.forget, dsn, lsn, self.report)

    def _window_for(self, target: RecoveryTarget) -> RecoverableWindow:
        if isinstance(target, LsnTarget):   # inclusive: the record at the LSN too
            self.wait_for(target.lsn if target.exclusive else target.lsn + 1)
            return self.window()
        window = self.window()
        # a time no transaction in the archive ends after, or a transaction or restore point
        # the archive does not hold: what the live server wrote since its last archived
        # segment decides it (a commit before the target may be there only), so the archive
        # must first hold every record written so far
        if not self._past_archive(target, window):
            return window
        try:
            lsn = self._live_lsn()
        except ConnectError as exc:
            if isinstance(target, TimeTarget):
                raise unknown_after_archive(target, window, exc) from None
            return window       # the restore names it: not in the archive's window
        try:
            self.wait_for(lsn)
        except CouldNotVerify:
            if isinstance(target, TimeTarget):
                raise
        return self.window()    # a transaction or restore point still not there: named

    def _past_archive(self, target: RecoveryTarget, window: RecoverableWindow) -> bool:
        if isinstance(target, TimeTarget):
            return past_archive(target, window)
        return target.kind in (TargetKind.XID, TargetKind.NAME) and \
            not self._located(target, window)

    def _live_lsn(self) -> int:
        with self.source() as dsn:
            return position(dsn).lsn

    def _located(self, target: RecoveryTarget, window: RecoverableWindow) -> bool:
        if window.empty or window.earliest_lsn is None:
            return True          # nothing to restore from: the restore says so
        try:
            locate(self.bins, self.repo, target, window)
        except (UsageError, CouldNotVerify):
            return False
        return True

    def pitr_enabled(self) -> bool:
        return True

    def live_lineage(self) -> set[str] | None:
        return window_mod.lineage(self.repo)

    def archive_status(self) -> dict[str, Any] | None:
        """The live server's archiver, read (pg_stat_archiver; pg_monitor is enough)."""
        try:
            with self.source() as dsn, connect(dsn) as conn:
                row = conn.execute("select last_archived_time, failed_count, last_failed_wal, "
                                   "last_archived_wal from pg_stat_archiver").fetchone()
                live = position(dsn)
        except CouldNotVerify:
            return None
        if row is None or row[0] is None:
            return None
        return {"rpo_bytes": unarchived_bytes(live.lsn, str(row[3]), live.seg_size),
                "streaming": False,
                "failed_count": row[1],
                "last_failed_wal": row[2],
                "rpo_seconds": round((datetime.now(UTC) - row[0]).total_seconds(), 1)}

    def pitr_readiness(self, operator: Operator, report: Report,
                       options: Options = NO_OPTIONS) -> list[ReadinessItem]:
        refuse_options(options, {}, "an attached environment's PITR readiness")
        usable = [b for b in self.backups() if b.verification is not Verification.FAILED]
        with self.source() as dsn, connect(dsn) as conn:
            row = conn.execute("select current_setting('archive_mode'), last_archived_wal, "
                               "failed_count from pg_stat_archiver").fetchone()
        assert row is not None
        archiving = row[0] != "off" and row[1] is not None
        return [ReadinessItem("base backups in the team's repository", bool(usable),
                              f"{len(usable)} usable backup(s) ({self.strategy.describe()})"),
                ReadinessItem("PITR enabled: continuous WAL archiving", archiving,
                              f"archive_mode = {row[0]}, last archived {row[1] or 'none'}, "
                              f"{row[2]} failure(s)")]

    # ---- copies for drills and restores -----------------------------------------------------
    @property
    def throwaways(self) -> Throwaways:
        return Throwaways(self.bins, self.repo, self.state_dir / "instances", self.database,
                          self._window_for, self.strategy.server_env, self.bootstrap_role)

    def bootstrap_role(self) -> str:
        """The role a restored copy is read as: the team's bootstrap superuser (initdb -U may
        have named it anything but `postgres`), asked of the live server; while the server is
        down, the DSN's own role, which the copy holds too."""
        from psycopg.conninfo import conninfo_to_dict

        dsn = resolve_dsn(self.dsn, self.base_dir)
        with contextlib.suppress(ConnectError), connect(dsn) as conn:
            row = conn.execute("select rolname from pg_roles where oid = 10").fetchone()
            if row is not None:
                return str(row[0])
        return str(conninfo_to_dict(dsn).get("user") or "postgres")

    @property
    def registry(self) -> Registry:
        return self.throwaways.registry

    def restore(self, target: RecoveryTarget, *, pause: bool = False,
                progress: Progress | None = None, backup_id: str | None = None,
                keep: bool = True, options: Options = NO_OPTIONS) -> Instance:
        refuse_options(options, {}, f"{self.describe()}'s restores")
        self.check_major(backup_id)
        with self.busy("restore"):
            return self.throwaways.restore(target, self.strategy.restorer(), pause=pause,
                                           progress=progress, backup_id=backup_id, keep=keep)

    def check_major(self, backup_id: str | None) -> None:
        """pg_bin_dir's major against the backups', before anything reads their WAL."""
        backups = [b for b in self.backups() if backup_id in (None, b.id)]
        if not backups:
            return
        major = backups[-1].server_version.split(".")[0]
        if major.isdigit() and int(major) != self.bins.major:
            raise UsageError(f"pg_bin_dir holds PostgreSQL {self.bins.major} and the team's "
                             f"backups are PostgreSQL {major}: a restore needs the binaries of "
                             f"the backups' major",
                             hint=f"pg_bin_dir = the bin folder of PostgreSQL {major} (on "
                                  f"Debian: /usr/lib/postgresql/{major}/bin)")

    def tidy(self, report: Report) -> None:
        self.throwaways.tidy(report)

    def drill_point(self, request: CopyRequest, at: datetime | None) -> DrillPoint:
        if request.method is not CopyMethod.RESTORE or request.existing or request.existing_dsn:
            raise UsageError(f"{self.describe()} restores its own copies: --restored-ref, "
                             f"--restored-dsn and --branch are for Supabase environments")
        self.check_major(request.backup_id)     # refused before the snapshot, not after
        if request.backup_id is not None and request.backup_id not in {
                b.id for b in self.backups()}:
            raise UsageError(f"--backup {request.backup_id!r}: no such backup in "
                             f"{self.strategy.describe()} (spectral dr backups)")
        if at is None:
            return DrillPoint()
        return DrillPoint(TimeTarget(at), at, f"time {at.isoformat()}")

    def target_after(self, snapshot: Fingerprint, request: CopyRequest) -> RecoveryTarget:
        # exclusive: the state the snapshot saw is every record before its LSN; a commit
        # that starts exactly there came after it (PostgreSQL's inclusive LSN target would
        # replay it)
        check_same_system(self.repo, snapshot.source.system_identifier,
                          self.strategy.describe())
        return LsnTarget(parse_lsn(snapshot.source.lsn), exclusive=True)

    def provision_copy(self, target: RecoveryTarget, request: CopyRequest, operator: Operator,
                       report: Report, progress: Progress | None = None) -> Copy:
        inst = self.restore(target, backup_id=request.backup_id, progress=progress, keep=False)
        return self.throwaways.copy(inst)

    def keep_copy(self, copy: Copy) -> None:
        self.registry.keep(copy.id)

    def remove_copy(self, copy: Copy, operator: Operator, report: Report) -> None:
        self.registry.teardown(copy.id)

    def restored_through(self, copy: Copy, snapshot: Fingerprint,
                         restored: Fingerprint) -> datetime | None:
        return self.wal_archive().newest_commit_before(snapshot.source.lsn)

    def restore_new(self, target: RecoveryTarget, operator: Operator, report: Report) -> Copy:
        return self.throwaways.copy(self.restore(target, keep=True))

    def restore_in_place(self, *_: Any, **__: Any) -> NoReturn:
        self.refuse("in_place_undo")

    # ---- what it can do: read, and restore elsewhere ----------------------------------------
    def wal_archive(self) -> ArchiveReader:
        """The team's archive, made to hold every commit so far by waiting for it."""
        return ArchiveReader(self.bins, self.repo, self.state_dir, self._flush_archive)

    def _flush_archive(self) -> str | None:
        with self.source() as dsn:
            lsn = position(dsn).lsn
        self.wait_for(lsn)
        return None

    def backup_options(self) -> None:
        return None

    def retention(self) -> None:
        return None

    def restored_instances(self) -> LocalInstances:
        return LocalInstances(self)

    def in_place_undo(self) -> None:
        return None

    def wal_stream(self) -> None:
        return None

    def wal_status(self) -> None:
        return None
