"""A managed cluster is a host plus a repository strategy.

The host (providers/local/environment.py, `LocalEnvironment`) is the server spectral runs:
initdb, settings, start, stop, its paths and sessions. Where its backups and WAL archive live,
and how they are taken, listed, verified, expired and restored from, is a `RepositoryStrategy`:
the local repository (pg_basebackup and basic_archive, providers/local/strategy.py) or
pgBackRest (providers/pgbackrest/strategy.py). The managed provider (providers/local/provider.py)
composes the two; a new backend for a cluster spectral runs is a new strategy package, its
settings model and one line in the registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from spectral.pg.cluster import Cluster
    from spectral.providers.base import Backup, ReadinessItem
    from spectral.providers.capabilities import BackupOptions, ExpirePlan, Options
    from spectral.providers.local.repo import Repository
    from spectral.providers.local.restore import RestoreSteps


class RepositoryStrategy(Protocol):
    """Where a managed cluster's backups and WAL go, and how they come back."""

    kind: str                  # the provider name it is configured as
    streams_wal: bool          # `dr wal stream` writes into its repository

    # ---- the server's side: archive settings, the environment, start hooks ----------------
    def server_settings(self) -> dict[str, str]:
        """The settings archiving needs (archive_library or archive_command, ...)."""

    def server_env(self) -> dict[str, str]:
        """Environment variables the server needs (its archive and restore commands')."""

    def prepare(self) -> None:
        """The folders the repository needs, created (before a start or a backup)."""

    def before_create(self) -> None:
        """Checks before initdb (a strategy may refuse the server's major version)."""

    def after_create(self, cluster: Cluster) -> None: ...

    def on_open(self, cluster: Cluster) -> None:
        """The host opened its existing cluster (configuration a strategy keeps beside it)."""

    def before_start(self, cluster: Cluster) -> None: ...

    def after_start(self, cluster: Cluster) -> None: ...

    # ---- the repository --------------------------------------------------------------------
    def describe(self, environment: str) -> str: ...

    def repository(self) -> Repository:
        """The catalog and WAL archive as the window, targets and WAL reading see them."""

    def forget(self) -> None:
        """Read the repository again on the next look (after a backup or an expiry)."""

    def backup_options(self) -> BackupOptions: ...

    def take(self, conninfo: str, server_version: str, options: Options) -> Backup:
        """A backup of the running server (options parsed by `backup_options`)."""

    def restorer(self, options: Options) -> RestoreSteps:
        """Materialise a backup, its restore_command, recovery (options parsed)."""

    def apply_expire(self, plan: ExpirePlan) -> None: ...

    def wal_to_remove(self, plan: ExpirePlan) -> list[str]: ...

    def sweep_unlisted(self) -> list[str]:
        """What a killed backup or expiry left that the catalog does not list, removed."""

    def readiness(self, cluster: Cluster | None) -> list[ReadinessItem]:
        """The runbook's PITR activation steps 1 and 2 (`cluster`: the server, if running)."""

    def instead(self, capability: str) -> str:
        """What to do instead of a capability this strategy lacks ("" when none)."""
