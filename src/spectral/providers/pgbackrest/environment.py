"""A pgBackRest environment's cluster: the local environment's, archiving with
`pgbackrest archive-push`, with pgBackRest's configuration written into the state directory
before every start and the stanza created on the first."""

from __future__ import annotations

import hashlib
from pathlib import Path

from spectral.durable import write_atomic
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.osuser import give_to_server, make_owned_dir
from spectral.providers.local.environment import LocalEnvironment, server_settings
from spectral.providers.local.recovery import command_word
from spectral.providers.pgbackrest import command
from spectral.providers.pgbackrest.command import PgBackRest
from spectral.providers.pgbackrest.conf import ClusterAddress, PgBackRestPaths, render, repo_path
from spectral.providers.pgbackrest.repo import PgBackRestRepository
from spectral.providers.pgbackrest.settings import PgBackRestConfig, RepoType


class PgBackRestEnvironment(LocalEnvironment):
    def __init__(self, name: str, state_dir: Path, bins: PgBinaries, database: str,
                 cfg: PgBackRestConfig, secrets: dict[str, str]) -> None:
        super().__init__(name, state_dir, bins, database)
        self.cfg = cfg
        self.pgb = PgBackRestPaths(state_dir / "pgbackrest")
        self.tool = PgBackRest(self.pgb.conf_file, cfg.stanza, dict(secrets))

    def archive_command(self) -> str:
        return (f"{command.BINARY} {command_word(f'--config={self.pgb.conf_file}')} "
                f"{command_word(f'--stanza={self.cfg.stanza}')} archive-push %p")

    def own_settings(self) -> dict[str, str]:
        return {**server_settings(self.bins), "archive_mode": "on",
                "archive_command": self.archive_command(),
                # bounds the RPO: a segment is pushed at least once a minute
                "archive_timeout": "60s"}

    def server_env(self) -> dict[str, str]:
        return dict(self.tool.env)

    def repository(self) -> PgBackRestRepository:
        return PgBackRestRepository(self.pgb.mirror, tool=self.tool,
                                    repos=len(self.cfg.repositories))

    def prepare_repository(self) -> None:
        for d in (self.pgb.root, self.pgb.lock_dir, self.pgb.log_dir, self.pgb.spool_dir,
                  self.pgb.mirror):
            make_owned_dir(d, 0o750)
        for i, repo in enumerate(self.cfg.repositories):
            if repo.type is RepoType.POSIX:
                make_owned_dir(Path(repo_path(self.cfg, i, self.pgb)), 0o750)

    def write_configuration(self, port: int) -> None:
        text = render(self.cfg, self.pgb, ClusterAddress(self.paths.data_dir, port,
                                                         self.paths.socket_dir))
        make_owned_dir(self.pgb.root, 0o750)
        write_atomic(self.pgb.conf_file, text)
        self.pgb.conf_file.chmod(0o640)
        give_to_server(self.pgb.conf_file)

    def create(self) -> Cluster:
        command.check_supports(self.bins.major)
        self.prepare_repository()
        cluster = super().create()
        self.write_configuration(cluster.port)
        return cluster

    def cluster(self) -> Cluster:
        cluster = super().cluster()
        if not self.pgb.conf_file.exists():
            self.write_configuration(cluster.port)
        return cluster

    def before_start(self, cluster: Cluster) -> None:
        command.check_supports(self.bins.major)
        self.write_configuration(cluster.port)

    @property
    def _stanza_marker(self) -> Path:
        return self.pgb.root / "stanza-created"

    def after_start(self, cluster: Cluster) -> None:
        """The first start creates the stanza in every repository and checks that archiving
        reaches them (`pgbackrest check` waits for a pushed segment)."""
        # again whenever the stanza or the repositories change (a repository added later)
        ident = hashlib.sha256(f"{cluster.system_identifier()}\n{self.pgb.conf_file.read_text()}"
                               .encode()).hexdigest()
        marker = self._stanza_marker
        if marker.exists() and marker.read_text().strip() == ident:
            return
        self.tool.run("stanza-create", timeout=600)
        self.tool.run("check", timeout=600)
        write_atomic(marker, ident + "\n")
