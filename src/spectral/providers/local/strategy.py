"""The local repository strategy: base backups with pg_basebackup (full and incremental,
verified with pg_verifybackup) and continuous archiving with the basic_archive module, into
`<state_dir>/backups` (repo.py); restores with pg_combinebackup and PostgreSQL's recovery
(providers/repository.py says how a strategy and the host make a managed cluster)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spectral.pg.osuser import make_owned_dir
from spectral.providers.base import Backup, ReadinessItem
from spectral.providers.capabilities import BackupOptions, ExpirePlan, Options
from spectral.providers.local.capabilities import LocalBackupOptions
from spectral.providers.local.repo import LocalRepository
from spectral.providers.local.restore import Restorer

if TYPE_CHECKING:
    from spectral.pg.cluster import Cluster
    from spectral.providers.local.environment import LocalEnvironment


def archive_settings(archive_dir: str) -> dict[str, str]:
    """Continuous archiving into `archive_dir` with the basic_archive module (atomic rename and
    fsync of every segment; an identical segment archived twice is fine)."""
    return {"archive_mode": "on", "archive_library": "basic_archive",
            "basic_archive.archive_directory": archive_dir,
            # bounds the RPO of archiving alone; `dr wal stream` brings it to ~0
            "archive_timeout": "60s"}


class LocalRepositoryStrategy:
    kind = "local"
    streams_wal = True

    def __init__(self, host: LocalEnvironment) -> None:
        self.name, self.paths, self.bins = host.name, host.paths, host.bins
        self.repo = LocalRepository(self.paths.repo_dir)

    # ---- the server's side ------------------------------------------------------------------
    def server_settings(self) -> dict[str, str]:
        return archive_settings(str(self.paths.archive_dir))

    def server_env(self) -> dict[str, str]:
        return {}

    def prepare(self) -> None:
        for d in (self.paths.repo_dir, self.paths.archive_dir, self.paths.repo_dir / "stream"):
            make_owned_dir(d, 0o750)

    def before_create(self) -> None:
        pass

    def after_create(self, cluster: Cluster) -> None:
        pass

    def on_open(self, cluster: Cluster) -> None:
        pass

    def before_start(self, cluster: Cluster) -> None:
        pass

    def after_start(self, cluster: Cluster) -> None:
        pass

    # ---- the repository ----------------------------------------------------------------------
    def describe(self, environment: str) -> str:
        return f"environment {environment}"

    def repository(self) -> LocalRepository:
        return self.repo

    def forget(self) -> None:
        pass     # read from disk on every look

    def backup_options(self) -> BackupOptions:
        return LocalBackupOptions(self.describe(self.name))

    def take(self, conninfo: str, server_version: str, options: Options) -> Backup:
        from spectral.providers.local.backup import take_backup

        return take_backup(self.bins, self.repo, conninfo, server_version,
                           incremental=options.get("type") == "incr")

    def restorer(self, options: Options) -> Restorer:
        return Restorer(self.bins, self.repo)

    def apply_expire(self, plan: ExpirePlan) -> None:
        from spectral.providers.local.expire import apply

        apply(self.repo, plan)

    def wal_to_remove(self, plan: ExpirePlan) -> list[str]:
        from spectral.providers.local.expire import wal_to_remove

        return wal_to_remove(self.repo, plan.oldest_kept_start_lsn)

    def sweep_unlisted(self) -> list[str]:
        from spectral.providers.local.expire import sweep_unlisted

        with self.repo.locked():
            return sweep_unlisted(self.repo)

    def readiness(self, cluster: Cluster | None) -> list[ReadinessItem]:
        from spectral.providers.local.readiness import readiness

        return readiness(self.repo.read(), cluster)

    def instead(self, capability: str) -> str:
        return ""
