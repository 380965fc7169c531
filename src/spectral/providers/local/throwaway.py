"""Throwaway instances: a backup chain restored into a new data directory on this host and
recovered by PostgreSQL to a target, then listed, kept or torn down. Shared by every provider
whose backups spectral can restore on this host: a cluster it runs (providers/local/provider.py)
and the backups a team already has (providers/attached/). The repository, its restorer and how
the window is read are the caller's; nothing here touches the source."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from spectral.durable import write_atomic
from spectral.errors import SpectralError
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.osuser import give_to_server, make_owned_dir
from spectral.providers.base import Copy, Instance, Progress, RecoverableWindow, Report
from spectral.providers.local.environment import server_settings
from spectral.providers.local.instances import Registry
from spectral.providers.local.recovery import recovery_settings, throwaway_settings
from spectral.providers.local.repo import Repository
from spectral.providers.local.restore import RestoreSteps, described
from spectral.providers.local.targets import RestorePlan, plan
from spectral.providers.local.window import needs_times, usable_backups
from spectral.recovery_target import RecoveryTarget, TargetKind
from spectral.room import ensure_copy_fits
from spectral.runner import cancelled_by
from spectral.undo import UndoStack

if TYPE_CHECKING:
    from spectral.providers.integrity import CopyIntegrity


@dataclass
class Throwaways:
    """Restores into new instances under `instances_dir`, with `bins`. `window` is the
    recoverable window as a restore must see it (the caller first makes the archive hold what
    it can: a flush, or a wait for the archive); `server_env` is the environment a restored
    server's restore_command needs (its secrets)."""

    bins: PgBinaries
    repo: Repository
    instances_dir: Path
    database: str
    window: Callable[[RecoveryTarget], RecoverableWindow]
    server_env: Callable[[], dict[str, str]]
    superuser: Callable[[], str] = lambda: "postgres"   # the role a copy is read as
    # the window with its times, when `window` leaves them out for a target that needs none
    # (window.needs_times): a refused plan is said with them
    timed_window: Callable[[], RecoverableWindow] | None = None

    @property
    def registry(self) -> Registry:
        return Registry(self.bins, self.instances_dir)

    def restore(self, target: RecoveryTarget, restorer: RestoreSteps, *, pause: bool = False,
                progress: Progress | None = None, backup_id: str | None = None,
                keep: bool = True) -> Instance:
        """Restore into a new instance. `keep=False` marks it as owned by this process (a
        drill): if the process dies, the next run finds it orphaned and removes it."""
        early = self._early_plan(target, backup_id, restorer)
        if early is None:
            window, restore_plan = self._plan(target, backup_id)
        # before anything is written
        ensure_copy_fits(self.instances_dir, (early or restore_plan).chain, "the restored copy")
        inst_id = "r" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")[:-3]
        home = self.instances_dir / inst_id
        with UndoStack() as undo:
            make_owned_dir(self.instances_dir, 0o755)
            make_owned_dir(home, 0o755)
            undo.push("instance directory", lambda: shutil.rmtree(home, ignore_errors=True))
            self.registry.register_start(home, described(early or restore_plan))
            data = home / "data"
            if early is None:
                written = restorer.materialize(restore_plan, data, progress, pause=pause)
            else:
                window, restore_plan, written = self._plan_while_copying(
                    early, backup_id, restorer, data, progress)
            cluster = Cluster(self.bins, data, socket_dir_for(home / "run"), free_port(),
                              home / "log" / "postgres.log", superuser=self.superuser(),
                              database=self.database,
                              env=self.server_env(),   # its restore_command's secrets
                              port_chosen=True)
            conf = {**server_settings(self.bins), **throwaway_settings(self.bins),
                    **recovery_settings(restore_plan.target, restorer.restore_command(),
                                        pause=pause), **written, **cut_off(home, data),
                    **LOG_SETTINGS}
            restorer.prepare_recovery(cluster, conf, restore_plan.target)
            undo.push("instance server", lambda: cluster.stop(timeout=30))
            inst = Instance(inst_id, cluster.conninfo(), cluster.port, str(data),
                            restore_plan.chain[-1].id, described(restore_plan),
                            datetime.now(UTC).isoformat(timespec="seconds"))
            self.registry.write(home, inst, "restoring", keep)
            reached = restorer.recover(cluster, restore_plan, window, pause, progress)
            # the start may have moved to another port (the chosen one was taken meanwhile)
            inst = replace(inst, port=cluster.port, dsn=cluster.conninfo(),
                           reached=replace(reached, resolved=restore_plan.why or None))
            self.registry.write(home, inst, "paused" if pause else "ready", keep)
            undo.release("instance server")
            undo.release("instance directory")
        return inst

    def _early_plan(self, target: RecoveryTarget, backup_id: str | None,
                    restorer: RestoreSteps) -> RestorePlan | None:
        """The plan the latest point will have, from the repository as it is (the newest
        usable backup, or the one named): its copy's command line does not depend on the
        window, so a restorer that stops when cancelled copies while the archive is flushed
        and the window read. None: the plan comes first."""
        if target.kind is not TargetKind.LATEST or not restorer.stops_when_cancelled:
            return None
        try:
            backups = usable_backups(self.repo)
            chosen = next((b for b in backups if b.id == backup_id), None) \
                if backup_id is not None else (backups[-1] if backups else None)
            return RestorePlan(target, self.repo.chain(chosen), None, target) \
                if chosen is not None else None
        except SpectralError:    # said by the plan, if it matters
            return None

    def _plan_while_copying(self, early: RestorePlan, backup_id: str | None,
                            restorer: RestoreSteps, data: Path, progress: Progress | None
                            ) -> tuple[RecoverableWindow, RestorePlan, dict[str, str]]:
        """The early plan's chain copied while the plan is made; copied again when the plan
        is another (a backup finished meanwhile); the copy stopped when the plan is refused
        (or the run interrupted)."""
        cancel = threading.Event()

        def copy() -> dict[str, str]:
            with cancelled_by(cancel):
                return restorer.materialize(early, data, progress)

        with ThreadPoolExecutor(1) as pool:
            copying = pool.submit(copy)
            try:
                window, restore_plan = self._plan(early.target, backup_id)
                written = copying.result()
            except BaseException:
                cancel.set()
                raise
        if [b.id for b in restore_plan.chain] != [b.id for b in early.chain] or \
                restore_plan.target != early.target:
            shutil.rmtree(data, ignore_errors=True)
            written = restorer.materialize(restore_plan, data, progress)
        return window, restore_plan, written

    def _plan(self, target: RecoveryTarget,
              backup_id: str | None) -> tuple[RecoverableWindow, RestorePlan]:
        window = self.window(target)
        try:
            return window, plan(self.bins, self.repo, target, window, backup_id)
        except SpectralError:
            if self.timed_window is None or needs_times(target):
                raise
            window = self.timed_window()
            return window, plan(self.bins, self.repo, target, window, backup_id)

    def copy(self, inst: Instance) -> Copy:
        """A drill's view of an instance restored here, with its physical checks."""
        from spectral.providers.local.integrity import ThrowawayIntegrity  # drills only

        return copy_of(inst, ThrowawayIntegrity(self.bins, self.registry.cluster_of(inst),
                                                inst.dsn))

    def tidy(self, report: Report) -> None:
        for orphan in self.registry.orphans():   # left by a run that was killed
            report(f"removing orphaned instance {orphan} left by an earlier run")
            self.registry.teardown(orphan)


# What the recovery log check reads (pg/serverlog.py), whatever a team's postgresql.conf says:
# the server's own lines, with their prefix, in English, warnings included, in the instance's log
LOG_SETTINGS = {"logging_collector": "off", "log_destination": "stderr",
                "log_line_prefix": "%m [%p] ", "lc_messages": "C",
                "log_min_messages": "warning"}


def cut_off(home: Path, data: Path) -> dict[str, str]:
    """What keeps a restored copy from reaching anything of its source's, whatever the
    backup's own postgresql.conf says (a team's file sets archive_command, and a promoted copy
    would archive its new timeline into the team's repository; a synchronous standby that is
    not there would hold every commit): no archiving, no synchronous standby, and its own
    pg_hba.conf (local connections only; the socket folder is the instance's). A backup of a
    cluster whose configuration lives elsewhere (Debian's /etc/postgresql) has no
    postgresql.conf: an empty one is written for spectral's settings to be included from."""
    hba = home / "pg_hba.conf"
    write_atomic(hba, "local all all trust\n", mode=0o600)
    give_to_server(hba)
    main = data / "postgresql.conf"
    if not main.exists():
        write_atomic(main, "", mode=0o600)
        give_to_server(main)
    return {"archive_mode": "off", "synchronous_standby_names": "", "hba_file": str(hba)}


def copy_of(inst: Instance, integrity: CopyIntegrity | None = None) -> Copy:
    """A drill's view of a restored instance."""
    stopped = inst.reached.stopped if inst.reached else None
    return Copy(inst.id, inst.dsn, f"instance {inst.id}", inst.backup_id, inst.target,
                inst, reached=stopped or None,
                kept_note=f"{inst.dsn} (spectral dr teardown {inst.id})", integrity=integrity)
