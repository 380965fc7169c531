"""The local provider: everything behind `spectral dr backup | backups | restore | instances |
teardown` for an environment whose PostgreSQL the tool runs itself."""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spectral.errors import ClusterError, CouldNotVerify
from spectral.localenv import LocalEnvironment, server_settings
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.conn import connect
from spectral.pg.osuser import make_owned_dir, server_identity
from spectral.providers.base import (
    Backup,
    BackupKind,
    Instance,
    RecoverableWindow,
    RecoveryTarget,
    TargetKind,
    Verification,
)
from spectral.providers.local import backup as backup_mod
from spectral.providers.local import walread
from spectral.providers.local import window as window_mod
from spectral.providers.local.copy import copy_tree
from spectral.providers.local.instances import Registry
from spectral.providers.local.recovery import (
    read_outcome,
    recovery_failure,
    recovery_settings,
    throwaway_settings,
)
from spectral.providers.local.repo import Repository
from spectral.providers.local.targets import RestorePlan, plan
from spectral.providers.local.wal import parse_lsn
from spectral.runner import run
from spectral.undo import UndoStack
from spectral.waits import WaitTimeout, wait_until

# progress(stage, done, total): stage "copy" counts bytes, "replay" counts WAL bytes
Progress = Callable[[str, int, int], None]
RESTORE_TIMEOUT = 24 * 3600.0


class LocalProvider:
    def __init__(self, local: LocalEnvironment,
                 report: Callable[[str], None] | None = None) -> None:
        self.local = local
        self.report = report
        self.bins = local.bins
        self.repo = Repository(local.paths.repo_dir)

    # ---- backups --------------------------------------------------------------------------
    def busy(self, what: str) -> contextlib.AbstractContextManager[None]:
        """The environment's operation lock (one restore, backup or drill at a time)."""
        from spectral.envlock import operation_lock

        return operation_lock(self.local.paths.state_dir, what, report=self.report)

    def backup(self, *, incremental: bool = False) -> Backup:
        with self.busy("backup"), self.local.session() as cluster:
            version = _server_version(cluster)
            self.local.prepare_repository()
            return backup_mod.take_backup(self.bins, self.repo, cluster.conninfo(), version,
                                          incremental=incremental)

    def backups(self) -> list[Backup]:
        return self.repo.read()

    def window(self) -> RecoverableWindow:
        return window_mod.compute(self.bins, self.repo)

    def newest_commit_before(self, lsn: str) -> datetime | None:
        """The time of the newest commit record before `lsn` on the live lineage."""
        lin = window_mod.lineage_of(self.repo)
        end = parse_lsn(lsn)
        segs = [s for s in lin.segments if s.start_lsn() < end]
        chunk = 4
        while segs:
            part, segs = segs[-chunk:], segs[:-chunk]
            summary = walread.summarize(self.bins, lin.view.where, part, limit=lin.end_cap)
            commits = [c for c in summary.commits if c.lsn < end and c.committed]
            if commits:
                return commits[-1].time
            chunk *= 4
        return None

    def commits_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Committed and aborted transactions on the live lineage between two times (reads every
        archived segment from the oldest backup on: fine for days of WAL, slow for months)."""
        from spectral.providers.local.wal import format_lsn

        lin = window_mod.lineage_of(self.repo)
        summary = walread.summarize(self.bins, lin.view.where, lin.segments, limit=lin.end_cap)
        return [{"xid": rec.xid, "time": rec.time.isoformat(), "lsn": format_lsn(rec.lsn),
                 "committed": rec.committed,
                 "target_just_before": f"--target-xid {rec.xid} --exclusive"}
                for rec in summary.commits if start <= rec.time <= end]

    def flush_archive(self, timeout: float = 60) -> str | None:
        """When the environment's server is up, switch to a new WAL segment and wait until the
        old one is archived, so that every commit so far is in the archive. Returns the segment,
        or None when the server is down (then the archive is as complete as it gets)."""
        try:
            cluster = self.local.cluster() if self.local.exists() else None
        except ClusterError:      # the source is gone (the disaster being recovered from)
            return None
        if cluster is None or not cluster.is_running():
            return None
        with cluster.connect() as conn:
            # pg_switch_wal returns the end of the last record plus one: the segment to wait for
            # holds the byte before it (with no new WAL, that is one archived already)
            row = conn.execute("select pg_walfile_name(pg_switch_wal() - 1)").fetchone()
        assert row is not None
        segment = str(row[0])
        try:
            wait_until(lambda: (self.repo.archive / segment).exists(), timeout=timeout,
                       interval=0.1, what=f"archiving of {segment}")
        except WaitTimeout:
            raise CouldNotVerify(f"WAL segment {segment} was not archived within {timeout:g}s; "
                                 f"check archive_command in the server log") from None
        return segment

    # ---- restore into a new throwaway instance --------------------------------------------
    def restore(self, target: RecoveryTarget, *, pause: bool = False,
                progress: Progress | None = None, backup_id: str | None = None,
                keep: bool = True) -> Instance:
        """Restore into a new instance. `keep=False` marks it as owned by this process (a
        drill): if the process dies, the next run finds it orphaned and removes it."""
        with self.busy("restore"):
            return self._restore(target, pause=pause, progress=progress, backup_id=backup_id,
                                 keep=keep)

    def _restore(self, target: RecoveryTarget, *, pause: bool, progress: Progress | None,
                 backup_id: str | None, keep: bool) -> Instance:
        self.flush_archive()   # the target may be in the segment being written
        window = self.window()
        restore_plan = plan(self.bins, self.repo, target, window, backup_id)
        target = restore_plan.target
        inst_id = "r" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")[:-3]
        home = self.local.paths.instances_dir / inst_id
        with UndoStack() as undo:
            make_owned_dir(self.local.paths.instances_dir, 0o755)
            make_owned_dir(home, 0o755)
            undo.push("instance directory", lambda: shutil.rmtree(home, ignore_errors=True))
            self.registry.register_start(home)
            data = home / "data"
            self._materialize(restore_plan, data, progress)
            cluster = Cluster(self.bins, data, socket_dir_for(home / "run"), free_port(),
                              home / "log" / "postgres.log")
            conf = {**server_settings(self.bins), **throwaway_settings(self.bins),
                    **recovery_settings(target, self.repo.archive, self.repo.stream,
                                        pause=pause)}
            self._prepare_recovery(cluster, conf, target)
            undo.push("instance server", lambda: cluster.stop(timeout=30))
            inst = Instance(inst_id, cluster.conninfo(), cluster.port, str(data),
                            restore_plan.chain[-1].id, _described(restore_plan),
                            datetime.now(UTC).isoformat(timespec="seconds"))
            self.registry.write(home, inst, "restoring", keep)
            reached = self._recover(cluster, restore_plan, window, pause, progress)
            inst.reached = {**reached, "resolved": restore_plan.why or None}
            self.registry.write(home, inst, "paused" if pause else "ready", keep)
            undo.release("instance server")
            undo.release("instance directory")
        return inst

    def _materialize(self, restore_plan: RestorePlan, data: Path,
                     progress: Progress | None) -> None:
        chain = restore_plan.chain
        full = self.repo.backup_dir(chain[0].id)
        # A backup can rot after it was taken: it is checked again, while it is being copied
        # (both read the same files, on two cores), and never restored when the check fails.
        with ThreadPoolExecutor(1) as pool:
            check = pool.submit(backup_mod.verify, self.bins, full, False)
            if len(chain) == 1:
                total = chain[0].size_bytes

                def advance(done: int) -> None:
                    if progress:
                        progress("copy", min(done, total), total)

                make_owned_dir(data, 0o700)
                copy_tree(full, data, progress=advance if progress else None)
                (data / "backup_manifest").unlink(missing_ok=True)
            verification, detail = check.result()
        if verification is Verification.FAILED:
            raise CouldNotVerify(f"backup {chain[0].id} fails verification and will not be "
                                 f"restored: {detail}")
        if len(chain) == 1:
            return
        if progress:
            progress("combine", 0, len(chain))
        run([self.bins.path("pg_combinebackup"), "-o", str(data),
             *[str(self.repo.backup_dir(b.id)) for b in chain]],
            timeout=RESTORE_TIMEOUT, run_as=server_identity())
        if progress:
            progress("combine", len(chain), len(chain))

    def _prepare_recovery(self, cluster: Cluster, conf: dict[str, str],
                          target: RecoveryTarget) -> None:
        for stale in ("postmaster.pid", "standby.signal", "backup_manifest"):
            (cluster.data_dir / stale).unlink(missing_ok=True)
        _drop_auto_settings(cluster.data_dir / "postgresql.auto.conf")
        cluster.write_conf(conf)
        signal_file = cluster.data_dir / "recovery.signal"
        signal_file.touch()
        if target.kind is TargetKind.LATEST:
            self._take_stream_tail(cluster.data_dir)
        make_owned_dir(cluster.data_dir, 0o700)
        from spectral.pg.osuser import give_to_server

        give_to_server(cluster.data_dir)

    def _take_stream_tail(self, data: Path) -> None:
        """pg_receivewal's newest .partial segment holds commits not archived yet: recovery
        reads it from pg_wal (restore_command never asks for a .partial)."""
        partials = sorted(self.repo.stream.glob("*.partial")) if self.repo.stream.is_dir() else []
        if partials:
            newest = partials[-1]
            shutil.copyfile(newest, data / "pg_wal" / newest.name.removesuffix(".partial"))

    def _recover(self, cluster: Cluster, restore_plan: RestorePlan, window: RecoverableWindow,
                 pause: bool, progress: Progress | None) -> dict[str, Any]:
        try:
            cluster.start(timeout=RESTORE_TIMEOUT)
        except ClusterError as exc:
            log = _read(cluster.log_file)
            reason = recovery_failure(log) or exc.message
            raise CouldNotVerify(f"recovery failed: {reason}") from None
        start_lsn = parse_lsn(restore_plan.chain[-1].stop_lsn)
        goal = restore_plan.target_lsn or parse_lsn(window.latest_lsn or "0/0")

        def done() -> bool:
            if cluster.pid() is None:
                raise CouldNotVerify(f"recovery failed: "
                                     f"{recovery_failure(_read(cluster.log_file)) or 'exited'}")
            with connect(cluster.conninfo()) as conn:
                row = conn.execute(
                    "select pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, "
                    "case when pg_is_in_recovery() then pg_get_wal_replay_pause_state() "
                    "else 'not paused' end").fetchone()
            assert row is not None
            in_recovery, replayed, paused = row
            if progress and replayed:
                progress("replay", max(0, parse_lsn(replayed) - start_lsn),
                         max(1, goal - start_lsn))
            return (paused == "paused") if pause else not in_recovery

        try:
            wait_until(done, timeout=RESTORE_TIMEOUT, interval=0.02, max_interval=0.1,
                       what="recovery")
        except WaitTimeout:
            raise CouldNotVerify("recovery did not finish in time") from None
        outcome = read_outcome(_read(cluster.log_file))
        self._check_reached(restore_plan, window, outcome.to_json(), pause)
        return outcome.to_json()

    @staticmethod
    def _check_reached(restore_plan: RestorePlan, window: RecoverableWindow,
                       outcome: dict[str, Any], pause: bool) -> None:
        """Recovery must have stopped at the target, not at an earlier point."""
        target = restore_plan.target
        if target.kind is TargetKind.LATEST:
            redo = outcome.get("redo_done_lsn")
            if redo and window.latest_lsn and parse_lsn(redo) < parse_lsn(window.latest_lsn):
                raise CouldNotVerify(f"recovery ended at {redo}, before the end of the archive "
                                     f"({window.latest_lsn})")
            return
        if not outcome.get("stopped") and not pause:
            raise CouldNotVerify(f"recovery promoted without reaching {target.describe()}")

    # ---- throwaway instances (providers/local/instances.py) ---------------------------------
    @property
    def registry(self) -> Registry:
        return Registry(self.bins, self.local.paths.instances_dir)

    def keep(self, instance_id: str) -> None:
        self.registry.keep(instance_id)

    def instances(self) -> list[Instance]:
        return self.registry.instances()

    def is_running(self, inst: Instance) -> bool:
        return self.registry.cluster_of(inst).is_running()

    def teardown(self, instance_id: str) -> bool:
        return self.registry.teardown(instance_id)

    def orphans(self) -> list[str]:
        return self.registry.orphans()

    # ---- in place (providers/local/inplace.py) --------------------------------------------
    def restore_in_place(self, target: RecoveryTarget, *, confirmed: bool,
                         progress: Progress | None = None) -> dict[str, Any]:
        from spectral.providers.local.inplace import InPlace

        return InPlace(self).restore(target, confirmed=confirmed, progress=progress)

    def previous(self) -> list[Path]:
        from spectral.providers.local.inplace import InPlace

        return InPlace(self).kept_aside()

    def discard_previous(self) -> list[str]:
        from spectral.providers.local.inplace import InPlace

        return InPlace(self).discard()

    def undo_in_place(self) -> dict[str, Any]:
        from spectral.providers.local.inplace import InPlace

        return InPlace(self).undo()


# Settings a source may carry in postgresql.auto.conf that must not follow it into a restore:
# a synchronous standby that does not exist would make every commit of the restore wait forever.
NOT_RESTORED = ("synchronous_standby_names", "primary_conninfo", "primary_slot_name")


def _drop_auto_settings(path: Path) -> None:
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if ln.split("=", 1)[0].strip() not in NOT_RESTORED]
    if kept != lines:
        path.write_text("".join(kept))


def _described(restore_plan: RestorePlan) -> str:
    requested = restore_plan.requested or restore_plan.target
    if restore_plan.resolved:
        return f"{requested.describe()} = {restore_plan.target.describe()}"
    return requested.describe()


def _server_version(cluster: Cluster) -> str:
    with cluster.connect() as conn:
        row = conn.execute("select current_setting('server_version')").fetchone()
    return str(row[0]) if row else "?"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def full_or_incremental(backup: Backup) -> str:
    return "full" if backup.kind is BackupKind.FULL else f"incremental on {backup.parent}"


def elapsed_since(started: float) -> float:
    return time.monotonic() - started
