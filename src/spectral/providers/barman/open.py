"""Barman Cloud as an `AttachedRepository` (providers/attached/strategy.py), and the
registry's factory for provider = "barman-cloud".

spectral runs only barman-cloud's reading programs against the team's destination
(command.py) and lists its wals/ folder; it writes no object. The destination and the live
server are never changed (tests/test_attach_barman.py hashes every object's key and ETag and
the live pg_settings around every command)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from spectral.errors import ConfigError
from spectral.pg.binaries import PgBinaries, find_binaries
from spectral.providers.barman.command import BarmanCloud
from spectral.providers.barman.repo import BarmanRepository
from spectral.providers.barman.restore import BarmanRestorer
from spectral.providers.barman.settings import BarmanCloudConfig, BarmanCloudSettings

if TYPE_CHECKING:
    from spectral.environment import Environment
    from spectral.providers.attached.provider import AttachedProvider


class BarmanCloudAttached:
    """`AttachedRepository` over a team's Barman Cloud destination."""

    kind = "barman-cloud"

    def __init__(self, cfg: BarmanCloudConfig, state_dir: Path, bins: PgBinaries,
                 base_dir: Path | None) -> None:
        self.cfg, self.bins = cfg, bins
        self.tool = BarmanCloud(cfg, base_dir)
        self.repo = BarmanRepository(state_dir / "barman-cloud", self.tool)
        self._checked = False

    def describe(self) -> str:
        return self.tool.describe()

    def check(self) -> None:
        """The destination answers with these keys, and the server's folder holds something
        (a wrong destination or server_name is named, not read as an empty archive)."""
        if self._checked:
            return
        if not self.tool.keys("", first_only=True):
            raise ConfigError(f"{self.describe()}: nothing is stored under "
                              f"s3://{self.cfg.bucket}/{self.cfg.prefix}",
                              hint="check barman_cloud.destination and barman_cloud.server_name "
                                   "(the two arguments the team gives barman-cloud-backup)")
        self._checked = True

    def repository(self) -> BarmanRepository:
        return self.repo

    def forget(self) -> None:
        self.check()
        self.repo.forget()

    def restorer(self) -> BarmanRestorer:
        return BarmanRestorer(self.bins, self.repo)

    def server_env(self) -> dict[str, str]:
        """The keys, for the restored server's restore_command (barman-cloud-wal-restore)."""
        return self.tool.env()


def barman_cloud_provider(environment: Environment) -> AttachedProvider:
    """The registry's factory for provider = "barman-cloud"."""
    from spectral.providers.attached.provider import AttachedProvider

    settings = environment.config
    assert isinstance(settings, BarmanCloudSettings)
    bins = find_binaries(settings.pg_bin_dir)
    base_dir = environment.spectral.base_dir
    strategy = BarmanCloudAttached(settings.barman_cloud, environment.state_dir, bins, base_dir)
    return AttachedProvider(environment.name, settings.dsn, base_dir, bins,
                            environment.state_dir, strategy, environment.report)
