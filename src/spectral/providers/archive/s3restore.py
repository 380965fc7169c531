"""A restore from a plain archive in S3: every WAL segment from the backup's start fetched
into spectral's mirror first (the restored server's restore_command reads only the mirror, so
the keys never reach it), the backup's objects downloaded into a folder of the throwaway
instance, restored from there exactly as from a local folder (restore.py: copy or extract,
tablespaces, pg_verifybackup), and the download removed. Nothing is cached between restores:
a backup is read whole from the bucket on each, as a restore would read it."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path, PurePosixPath

from spectral.errors import CouldNotVerify, UsageError
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.osuser import give_to_server, make_owned_dir
from spectral.providers.archive.backups import BaseBackup, tar_in
from spectral.providers.archive.restore import archive_restore_command, unpack_backup
from spectral.providers.archive.s3 import S3Object
from spectral.providers.archive.s3repo import S3ArchiveRepository
from spectral.providers.base import Backup, Progress, RecoverableWindow
from spectral.providers.capabilities import RecoveryReached
from spectral.providers.local.restore import Recovery
from spectral.providers.local.targets import RestorePlan
from spectral.providers.local.wal import parse_lsn, segment_of
from spectral.recovery_target import RecoveryTarget

# the folders of a data directory that hold no file after a checkpoint: an S3 prefix keeps
# objects only, so a plain backup copied there (aws s3 sync) comes back without them, and
# PostgreSQL does not start without them (initdb makes them)
EMPTY_FOLDERS = ("global", "base", "pg_wal/archive_status", "pg_wal/summaries", "pg_tblspc",
                 "pg_notify", "pg_serial", "pg_snapshots", "pg_subtrans", "pg_twophase",
                 "pg_replslot", "pg_stat", "pg_stat_tmp", "pg_dynshmem", "pg_commit_ts",
                 "pg_xact", "pg_multixact/members", "pg_multixact/offsets",
                 "pg_logical/snapshots", "pg_logical/mappings")
DOWNLOADS = 8


def safe_relative(name: str) -> PurePosixPath:
    """An object's name inside its backup as a relative path that stays inside it (pure)."""
    rel = PurePosixPath(name)
    if rel.is_absolute() or any(p in ("", ".", "..") for p in name.split("/")):
        raise CouldNotVerify(f"object {name!r} of a backup is not a path inside it, and is "
                             f"not downloaded")
    return rel


class S3ArchiveRestorer:
    """`RestoreSteps` (local/restore.py) from a plain archive in S3."""

    stops_when_cancelled = False

    def __init__(self, bins: PgBinaries, repo: S3ArchiveRepository) -> None:
        self.bins, self.repo = bins, repo
        self.recovery = Recovery(bins, repo)

    def restore_command(self) -> str:
        return archive_restore_command(self.repo.archive, self.repo.segment_size())

    def prepare_recovery(self, cluster: Cluster, conf: dict[str, str],
                         target: RecoveryTarget) -> None:
        self.recovery.prepare_recovery(cluster, conf, target)

    def recover(self, cluster: Cluster, restore_plan: RestorePlan, window: RecoverableWindow,
                pause: bool, progress: Progress | None) -> RecoveryReached:
        return self.recovery.recover(cluster, restore_plan, window, pause, progress)

    def materialize(self, restore_plan: RestorePlan, data: Path, progress: Progress | None,
                    *, pause: bool = False) -> dict[str, str]:
        backup = restore_plan.chain[-1]
        self.repo.fetch_from(segment_of(parse_lsn(backup.start_lsn), self.repo.segment_size()))
        staging = data.parent / f"{data.name}-download"
        try:
            found = self._download(backup, staging, progress)
            written = unpack_backup(self.bins, found, backup, data, progress)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        major = (data / "PG_VERSION").read_text().strip()
        if major != str(self.bins.major):
            raise UsageError(f"backup {backup.id} is PostgreSQL {major} and pg_bin_dir holds "
                             f"PostgreSQL {self.bins.major}: recovery is not started")
        return written

    def _download(self, backup: Backup, staging: Path, progress: Progress | None) -> BaseBackup:
        objects = self.repo.objects_of(backup.id)
        total, done = max(1, objects.size), 0
        make_owned_dir(staging, 0o700)
        url = self.repo.s3.cfg.base_backups

        def one(name: str, obj: S3Object) -> int:
            dest = staging.joinpath(*safe_relative(name).parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.repo.s3.download(url, f"{backup.id}/{name}", dest, obj.size)
            return obj.size

        # several GETs at a time: each mostly waits on the bucket
        with ThreadPoolExecutor(DOWNLOADS) as pool:
            for fut in as_completed([pool.submit(one, n, o)
                                     for n, o in sorted(objects.objects.items())]):
                done += fut.result()
                if progress:
                    progress("download", min(done, total), total)
        if objects.tar is None:
            for folder in EMPTY_FOLDERS:
                (staging / folder).mkdir(parents=True, exist_ok=True)
            found = BaseBackup(backup.id, staging, None, None)
        else:
            found = BaseBackup(backup.id, staging, staging / objects.tar,
                               tar_in(staging, "pg_wal"))
        give_to_server(staging)
        return found
