"""The steps of a local restore, shared by a restore into a new instance and an in-place
restore: materialise the backup chain (checked again while it is copied), write the recovery
settings, run recovery and check it stopped where it was told to."""

from __future__ import annotations

import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from spectral.durable import write_atomic
from spectral.errors import BackupDamaged, ClusterError, CouldNotVerify
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect
from spectral.pg.osuser import give_to_server, make_owned_dir, server_identity
from spectral.providers.base import Progress, RecoverableWindow, Verification
from spectral.providers.capabilities import RecoveryReached
from spectral.providers.local import walsize
from spectral.providers.local.recovery import (
    read_outcome,
    recovery_failure,
    restore_command,
)
from spectral.providers.local.repo import LocalRepository, Repository
from spectral.providers.local.targets import RestorePlan
from spectral.providers.local.wal import parse_lsn
from spectral.recovery_target import RecoveryTarget, TargetKind
from spectral.runner import run
from spectral.waits import WaitTimeout, wait_until

RESTORE_TIMEOUT = 24 * 3600.0
OLDER_BACKUP = ("a target before this backup's start restores from an older one; spectral dr "
                "drill functional --backup <id> drills another")
# Settings a source may carry in postgresql.auto.conf that must not follow it into a restore:
# a synchronous standby that does not exist would make every commit of the restore wait forever;
# the source's archiving would push a restored copy's WAL into the source's archive; and
# recovery settings (from a restore tool, or an earlier in-place restore) would override the
# ones this restore writes (a restore tool's are replaced by spectral's own, quoted).
NOT_RESTORED = ("synchronous_standby_names", "primary_conninfo", "primary_slot_name",
                "archive_mode", "archive_command", "archive_library", "restore_command",
                "recovery_target", "recovery_target_time", "recovery_target_xid",
                "recovery_target_lsn", "recovery_target_name", "recovery_target_inclusive",
                "recovery_target_action", "recovery_target_timeline")

AUTO_SETTING_RE = re.compile(r"\s*[A-Za-z_][\w.]*\s*=")
AUTO_OTHER_RE = re.compile(r"\s*(#.*)?$")


class RestoreSteps(Protocol):
    """A repository strategy's restore: materialise a backup chain (and the settings it
    needs), the restore_command recovery fetches WAL with; then PostgreSQL's recovery, the same
    for every strategy (`Recovery`)."""

    # materialize runs programs only, each stopped by runner.cancelled_by: a restore to the
    # latest point may then copy while its plan is made (throwaway.py)
    stops_when_cancelled: bool

    def restore_command(self) -> str: ...

    def materialize(self, restore_plan: RestorePlan, data: Path, progress: Progress | None,
                    *, pause: bool = False) -> dict[str, str]:
        """The backup chain in `data`; the recovery settings it needs beside spectral's."""

    def prepare_recovery(self, cluster: Cluster, conf: dict[str, str],
                         target: RecoveryTarget) -> None: ...

    def recover(self, cluster: Cluster, restore_plan: RestorePlan, window: RecoverableWindow,
                pause: bool, progress: Progress | None) -> RecoveryReached: ...


class Restorer:
    """The local strategy's: pg_combinebackup (or a copy) of its base backups, checked again
    while copied; WAL from its archive and stream folders."""

    stops_when_cancelled = False     # the copy is this process's own

    def __init__(self, bins: PgBinaries, repo: LocalRepository) -> None:
        self.bins, self.repo = bins, repo
        self.recovery = Recovery(bins, repo)

    def prepare_recovery(self, cluster: Cluster, conf: dict[str, str],
                         target: RecoveryTarget) -> None:
        self.recovery.prepare_recovery(cluster, conf, target)

    def recover(self, cluster: Cluster, restore_plan: RestorePlan, window: RecoverableWindow,
                pause: bool, progress: Progress | None) -> RecoveryReached:
        return self.recovery.recover(cluster, restore_plan, window, pause, progress)

    def _condemn(self, backup_id: str, detail: str) -> None:
        """Mark a backup proven damaged FAILED in the catalog (as one that failed when taken):
        the next restore or drill plans from an older backup and the WAL instead (our own
        catalog: an attached team's repository is read by its own restorer, never written)."""
        with self.repo.locked():
            backups = self.repo.read()
            self.repo.write([replace(b, verification=Verification.FAILED,
                                     verification_detail=f"damaged, found by a restore: {detail}")
                             if b.id == backup_id else b for b in backups])

    def restore_command(self) -> str:
        return restore_command(self.repo.archive, self.repo.stream, self.repo.segment_size())

    def materialize(self, restore_plan: RestorePlan, data: Path, progress: Progress | None,
                    *, pause: bool = False) -> dict[str, str]:
        """Copy the full backup into `data` (combined with its incrementals). Returns recovery
        settings the copy needs beyond the plan's (none here)."""
        from spectral.providers.local import backup as backup_mod  # this strategy's only

        chain = restore_plan.chain
        full = self.repo.backup_dir(chain[0].id)
        # A backup can rot after it was taken: it is checked again, while it is being copied
        # (both read the same files, on two cores), and never restored when the check fails.
        with ThreadPoolExecutor(1) as pool:
            check = pool.submit(backup_mod.inspect, self.bins, full, False)
            if len(chain) == 1:
                self._copy(full, data, chain[0].size_bytes, progress)
            verification, detail, damage = check.result()
        if damage:   # proven damaged: a FAIL, not "could not verify"; never planned again
            self._condemn(chain[0].id, detail)
            raise BackupDamaged(chain[0].id, damage, hint=OLDER_BACKUP)
        if verification is Verification.FAILED:
            raise CouldNotVerify(f"backup {chain[0].id} fails verification and will not be "
                                 f"restored: {detail}")
        if len(chain) == 1:
            return {}
        if progress:
            progress("combine", 0, len(chain))
        run([self.bins.path("pg_combinebackup"), "-o", str(data),
             *[str(self.repo.backup_dir(b.id)) for b in chain]],
            timeout=RESTORE_TIMEOUT, run_as=server_identity())
        if progress:
            progress("combine", len(chain), len(chain))
        return {}

    @staticmethod
    def _copy(full: Path, data: Path, total: int, progress: Progress | None) -> None:
        from spectral.providers.local.copy import copy_tree

        def advance(done: int) -> None:
            if progress:
                progress("copy", min(done, total), total)

        make_owned_dir(data, 0o700)
        copy_tree(full, data, progress=advance if progress else None)
        (data / "backup_manifest").unlink(missing_ok=True)



def prepare_own_recovery(cluster: Cluster, conf: dict[str, str]) -> None:
    """Recovery settings and recovery.signal on a data directory, its own pg_wal untouched (an
    undo's put-back database needs no WAL but that: `Recovery.prepare_recovery` adds what a
    restored backup needs)."""
    for stale in ("postmaster.pid", "standby.signal", "backup_manifest"):
        (cluster.data_dir / stale).unlink(missing_ok=True)
    _drop_auto_settings(cluster.data_dir / "postgresql.auto.conf")
    cluster.write_conf(conf)
    (cluster.data_dir / "recovery.signal").touch()
    make_owned_dir(cluster.data_dir, 0o700)
    give_to_server(cluster.data_dir)


class Recovery:
    """PostgreSQL's recovery on a materialised data directory, watched and checked."""

    def __init__(self, bins: PgBinaries, repo: Repository) -> None:
        self.bins, self.repo = bins, repo

    def prepare_recovery(self, cluster: Cluster, conf: dict[str, str],
                         target: RecoveryTarget) -> None:
        self._same_segment_size(cluster.data_dir)
        prepare_own_recovery(cluster, conf)    # the whole directory is the server's after it
        if target.kind is TargetKind.LATEST:
            self._take_stream_tail(cluster.data_dir)
        self._take_branch_segments(cluster.data_dir)

    def _same_segment_size(self, data: Path) -> None:
        """The backup's cluster (its pg_control) has the segment size the archive's WAL was
        read in: otherwise the archive is another cluster's, and its window was not this
        backup's (recovery would stop at its first segment)."""
        segments = list(self.repo.wal_files())
        if not segments:
            return
        mine, theirs = walsize.from_control(self.bins, data), segments[0].size
        if mine != theirs:
            raise CouldNotVerify(f"the backup's cluster has WAL segments of {walsize.mb(mine)} "
                                 f"(its pg_control), the archive's WAL segments are of "
                                 f"{walsize.mb(theirs)}: the archive is another cluster's")

    def _take_stream_tail(self, data: Path) -> None:
        """pg_receivewal's newest .partial segment holds commits not archived yet: recovery
        reads it from pg_wal (restore_command never asks for a .partial)."""
        stream = self.repo.stream
        partials = sorted(stream.glob("*.partial")) if stream.is_dir() else []
        if partials:
            newest = partials[-1]
            copied = data / "pg_wal" / newest.name.removesuffix(".partial")
            shutil.copyfile(newest, copied)
            give_to_server(copied)

    def _take_branch_segments(self, data: Path) -> None:
        """Where a timeline branched inside a segment, the older timelines' files of it go into
        pg_wal too (marked archived, as PostgreSQL marks what it restores). Redo fetches that
        segment as the newest timeline's file, but at the end of recovery PostgreSQL (15) reads
        the PREPARE record of a transaction still prepared at the stop point from pg_wal under
        the name of the timeline it replayed there, and without that file stops with FATAL
        "requested WAL segment pg_wal/... has already been removed" (a target just before an
        in-place restore's branch point, with a transaction prepared before it). The same
        files restore_command serves: recovery reads the same WAL."""
        numbers: dict[int, list[Path]] = {}
        for seg, folder in self.repo.wal_files().items():
            path = folder / seg.name
            if not seg.partial and path.is_file() and path.stat().st_size == seg.size:
                numbers.setdefault(seg.segno, []).append(path)
        status = data / "pg_wal" / "archive_status"
        for paths in numbers.values():
            for path in sorted(paths, key=lambda p: p.name)[:-1]:   # but the newest timeline's
                make_owned_dir(status, 0o700)
                shutil.copyfile(path, data / "pg_wal" / path.name)
                (status / f"{path.name}.done").touch()
                give_to_server(data / "pg_wal" / path.name)
                give_to_server(status / f"{path.name}.done")

    def recover(self, cluster: Cluster, restore_plan: RestorePlan, window: RecoverableWindow,
                pause: bool, progress: Progress | None) -> RecoveryReached:
        """Start the server on the prepared directory and wait until recovery has finished (or
        paused), checking it stopped at the target."""
        try:
            cluster.start(timeout=RESTORE_TIMEOUT)
        except ClusterError as exc:
            reason = recovery_failure(read_text(cluster.log_file)) or exc.message
            raise CouldNotVerify(f"recovery failed: {reason}") from None
        start_lsn = parse_lsn(restore_plan.chain[-1].stop_lsn)
        goal = restore_plan.target_lsn or parse_lsn(window.latest_lsn or "0/0")

        def done() -> bool:
            if cluster.pid() is None:
                raise CouldNotVerify(f"recovery failed: "
                                     f"{recovery_failure(read_text(cluster.log_file)) or 'exited'}")
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
            # as finely as the start (a look is one connection): 0.1 s waited ~50 ms past the
            # promotion on average
            wait_until(done, timeout=RESTORE_TIMEOUT, interval=0.02, max_interval=0.05,
                       what="recovery")
        except WaitTimeout:
            raise CouldNotVerify("recovery did not finish in time") from None
        log_text = read_text(cluster.log_file)
        outcome = read_outcome(log_text)
        if pause and not outcome.stopped:
            raise CouldNotVerify(f"recovery paused before reaching "
                                 f"{restore_plan.target.describe()}: {paused_why(log_text)}",
                                 hint="without --pause the restore needs no hot standby and "
                                      "goes on to the target")
        check_reached(restore_plan, window, outcome, pause)
        return outcome


def paused_why(log_text: str) -> str:
    """PostgreSQL's reason for pausing short of the target: hot standby needs a setting at
    least as high as the source had when it wrote the WAL (raised after the backup)."""
    lines = log_text.splitlines()
    for i, line in enumerate(lines):
        if "insufficient parameter settings" in line:
            detail = next((d.split("DETAIL:", 1)[1].strip() for d in lines[i + 1:i + 4]
                           if "DETAIL:" in d), "")
            return line.split("WARNING:", 1)[-1].strip() + (f" ({detail})" if detail else "")
    return "it did not log that it stopped at the target"


def check_reached(restore_plan: RestorePlan, window: RecoverableWindow,
                  outcome: RecoveryReached, pause: bool) -> None:
    """Recovery must have stopped at the target, not at an earlier point."""
    target = restore_plan.target
    if target.kind is TargetKind.LATEST:
        redo = outcome.redo_done_lsn
        if redo and window.latest_lsn and parse_lsn(redo) < parse_lsn(window.latest_lsn):
            raise CouldNotVerify(f"recovery ended at {redo}, before the end of the archive "
                                 f"({window.latest_lsn})")
        return
    if not outcome.stopped and not pause:
        raise CouldNotVerify(f"recovery promoted without reaching {target.describe()}")


def _drop_auto_settings(path: Path) -> None:
    """Remove the settings that must not follow a restore, and any line that is not a setting
    or a comment: the rest of a value a restore tool wrote unquoted across two lines (pgBackRest
    writes a restore point's name as it is, a line break included)."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if (AUTO_SETTING_RE.match(ln) and ln.split("=", 1)[0].strip()
                                   not in NOT_RESTORED) or AUTO_OTHER_RE.match(ln)]
    if kept != lines:
        write_atomic(path, "".join(kept), mode=0o600)
        give_to_server(path)


def described(restore_plan: RestorePlan) -> str:
    requested = restore_plan.requested or restore_plan.target
    if restore_plan.resolved:
        return f"{requested.describe()} = {restore_plan.target.describe()}"
    return requested.describe()


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
