"""The plain archive as an `AttachedRepository` (providers/attached/strategy.py), in local
folders or in S3 prefixes, and the registry's factory for provider = "archive"."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from spectral.errors import CommandError, ConfigError
from spectral.pg.binaries import PgBinaries, find_binaries
from spectral.pg.osuser import server_identity
from spectral.providers.archive.repo import ArchiveRepository
from spectral.providers.archive.restore import ArchiveRestorer
from spectral.providers.archive.s3 import S3Prefixes
from spectral.providers.archive.s3repo import S3ArchiveRepository
from spectral.providers.archive.s3restore import S3ArchiveRestorer
from spectral.providers.archive.settings import ArchiveConfig, ArchiveSettings
from spectral.runner import run

if TYPE_CHECKING:
    from spectral.environment import Environment
    from spectral.providers.attached.provider import AttachedProvider


class PlainArchive:
    kind = "archive"

    def __init__(self, cfg: ArchiveConfig, state_dir: Path, bins: PgBinaries) -> None:
        self.cfg, self.bins = cfg, bins
        self.repo = ArchiveRepository(state_dir / "archive", cfg.base_dir, cfg.wal_dir)
        self._server_reads = False

    def describe(self) -> str:
        return f"base backups in {self.cfg.base_backups}, WAL in {self.cfg.wal}"

    def check(self) -> None:
        for key, folder in self.folders():
            if not folder.is_dir():
                raise ConfigError(f"{key} {str(folder)!r} is not a folder spectral can read")
        if not self._server_reads:
            self._check_server_reads()
            self._server_reads = True

    def folders(self) -> tuple[tuple[str, Path], ...]:
        return (("archive.base_backups", self.cfg.base_dir), ("archive.wal", self.cfg.wal_dir))

    def _check_server_reads(self) -> None:
        """Recovery's restore_command and pg_verifybackup run as the server OS user: a folder
        only this process can read would list a whole window and then fail every restore."""
        ident = server_identity()
        if ident is None:
            return
        for key, folder in self.folders():
            try:
                run(["test", "-r", str(folder), "-a", "-x", str(folder)], timeout=30,
                    run_as=ident)
            except CommandError:
                raise ConfigError(
                    f"{key} {str(folder)!r}: the server OS user {ident.user!r} cannot read it, "
                    f"and restores run as that user",
                    hint="give that user read access (e.g. add it to the folder's group), or set "
                         "SPECTRAL_SERVER_USER to a user who can read it") from None

    def repository(self) -> ArchiveRepository:
        return self.repo

    def forget(self) -> None:
        self.check()
        self.repo.forget()

    def restorer(self) -> ArchiveRestorer:
        return ArchiveRestorer(self.bins, self.repo)

    def server_env(self) -> dict[str, str]:
        return {}


class S3PlainArchive:
    """The plain archive in S3 prefixes: listed and read with GET, never written."""

    kind = "archive"

    def __init__(self, cfg: ArchiveConfig, state_dir: Path, bins: PgBinaries,
                 base_dir: Path | None) -> None:
        self.cfg, self.bins = cfg, bins
        self.s3 = S3Prefixes(cfg, base_dir)
        self.repo = S3ArchiveRepository(state_dir / "archive", self.s3)
        self._checked = False

    def describe(self) -> str:
        return self.s3.describe()

    def check(self) -> None:
        """The WAL prefix answers with these keys and holds something: a wrong bucket, prefix
        or endpoint is named, not read as an empty archive (the base backups prefix may be
        empty: no backups yet)."""
        if self._checked:
            return
        if not self.s3.objects(self.cfg.wal, first_only=True):
            raise ConfigError(f"archive.wal: nothing is stored under {self.cfg.wal}/",
                              hint="the prefix the team's archive_command writes to, e.g. "
                                   "s3://bucket/prefix/wal")
        self._checked = True

    def repository(self) -> S3ArchiveRepository:
        return self.repo

    def forget(self) -> None:
        self.check()
        self.repo.forget()

    def restorer(self) -> S3ArchiveRestorer:
        return S3ArchiveRestorer(self.bins, self.repo)

    def server_env(self) -> dict[str, str]:
        return {}       # restore_command reads spectral's mirror: no key leaves this process


def archive_provider(environment: Environment) -> AttachedProvider:
    """The registry's factory for provider = "archive"."""
    from spectral.providers.attached.provider import AttachedProvider

    settings = environment.config
    assert isinstance(settings, ArchiveSettings)
    bins = find_binaries(settings.pg_bin_dir)
    strategy: PlainArchive | S3PlainArchive
    if settings.archive.in_s3:
        strategy = S3PlainArchive(settings.archive, environment.state_dir, bins,
                                  environment.spectral.base_dir)
    else:
        strategy = PlainArchive(settings.archive, environment.state_dir, bins)
    return AttachedProvider(environment.name, settings.dsn, environment.spectral.base_dir, bins,
                            environment.state_dir, strategy, environment.report)
