"""The host of a managed cluster: the PostgreSQL the tool runs itself under
`<state_dir>/cluster`, created on first use. Commands that need it start it for themselves and
stop it again when they end; `spectral local up` keeps it running. Its archiving, the
environment its server needs and what happens around its creation and starts are its
repository strategy's (providers/repository.py): the local repository's by default."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from spectral.durable import file_lock, write_atomic
from spectral.errors import ClusterError
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.osuser import make_owned_dir
from spectral.providers.local.repo import Repository

if TYPE_CHECKING:
    from spectral.providers.repository import RepositoryStrategy

META_VERSION = 1


def server_settings(bins: PgBinaries, archive_dir: Path | None = None) -> dict[str, str]:
    """Settings for an environment's own cluster: WAL suitable for base backups and streaming,
    and, when `archive_dir` is given, continuous archiving into it with the basic_archive module
    (atomic rename and fsync of every segment; an identical segment archived twice is fine)."""
    conf = {
        "wal_level": "replica",
        "max_wal_senders": "10",
        "max_replication_slots": "10",
        "shared_buffers": "128MB",
        "max_wal_size": "2GB",
        "checkpoint_timeout": "15min",
        "log_line_prefix": "%m [%p] ",
        "track_commit_timestamp": "on",
    }
    if bins.major >= 17:
        conf["summarize_wal"] = "on"   # incremental base backups need WAL summaries
    if archive_dir is not None:
        from spectral.providers.local.strategy import archive_settings

        conf.update(archive_settings(str(archive_dir)))
    return conf


@dataclass(frozen=True)
class LocalPaths:
    state_dir: Path

    @property
    def cluster_dir(self) -> Path:
        return self.state_dir / "cluster"

    @property
    def data_dir(self) -> Path:
        return self.cluster_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return socket_dir_for(self.cluster_dir / "run")

    @property
    def log_file(self) -> Path:
        return self.cluster_dir / "log" / "postgres.log"

    @property
    def meta_file(self) -> Path:
        return self.cluster_dir / "cluster.json"

    @property
    def repo_dir(self) -> Path:
        return self.state_dir / "backups"

    @property
    def archive_dir(self) -> Path:
        return self.repo_dir / "wal"

    @property
    def instances_dir(self) -> Path:
        return self.state_dir / "instances"

    @property
    def password_file(self) -> Path:
        return self.state_dir / "secrets" / "superuser.password"


class LocalEnvironment:
    stream_release: str | None = None   # what opening the server did about a dead stream

    def __init__(self, name: str, state_dir: Path, bins: PgBinaries,
                 database: str = "postgres",
                 strategy: Callable[[LocalEnvironment], RepositoryStrategy] | None = None
                 ) -> None:
        from spectral.providers.local.strategy import LocalRepositoryStrategy

        self.name = name
        self.database = database
        self.paths = LocalPaths(state_dir)
        self.bins = bins
        self.report: Callable[[str], None] | None = None   # one-line notices (the CLI's stderr)
        self.strategy: RepositoryStrategy = (strategy or LocalRepositoryStrategy)(self)

    def tell(self, message: str) -> None:
        if self.report is not None:
            self.report(message)
        else:
            print(message, file=sys.stderr)

    # ---- what the repository strategy adds ---------------------------------------------------
    def own_settings(self) -> dict[str, str]:
        """The environment's server settings, continuous archiving included."""
        return {**server_settings(self.bins), **self.strategy.server_settings()}

    def server_env(self) -> dict[str, str]:
        """Environment variables the server needs (its archive command's secrets)."""
        return self.strategy.server_env()

    def repository(self) -> Repository:
        return self.strategy.repository()

    def before_start(self, cluster: Cluster) -> None:
        """Called before the environment's server starts."""
        self.strategy.before_start(cluster)

    def after_start(self, cluster: Cluster) -> None:
        """Called once the environment's server accepts connections."""
        self.strategy.after_start(cluster)

    def _cluster(self, port: int) -> Cluster:
        p = self.paths
        return Cluster(self.bins, p.data_dir, p.socket_dir, port, p.log_file,
                       database=self.database, env=self.server_env(),
                       port_chosen=True, on_new_port=self._port_moved)

    def _port_moved(self, cluster: Cluster) -> None:
        """The port spectral chose was taken by another process: the cluster starts on another
        one, recorded before the start so every later command reaches it."""
        meta = {**self._meta(), "port": cluster.port}
        write_atomic(self.paths.meta_file, json.dumps(meta, indent=2) + "\n")
        self.before_start(cluster)

    # ---- creation and identity ------------------------------------------------------------
    def exists(self) -> bool:
        return self.paths.meta_file.exists()

    def _meta(self) -> dict[str, Any]:
        try:
            meta: dict[str, Any] = json.loads(self.paths.meta_file.read_text())
        except (OSError, ValueError) as exc:
            raise ClusterError(f"{self.paths.meta_file} is unreadable ({exc}); not touching the "
                               f"cluster in {self.paths.data_dir}") from None
        return meta

    def create(self) -> Cluster:
        p = self.paths
        if p.meta_file.exists():
            raise ClusterError(f"{p.cluster_dir} already holds this environment's cluster")
        if p.data_dir.exists() and any(p.data_dir.iterdir()):
            raise ClusterError(f"{p.data_dir} holds a data directory spectral did not create "
                               f"(no {p.meta_file.name}); not touching it")
        self.strategy.before_create()
        make_owned_dir(p.state_dir, 0o755)
        make_owned_dir(p.cluster_dir, 0o755)
        make_owned_dir(p.password_file.parent, 0o700)
        p.password_file.write_text(secrets.token_urlsafe(24))
        p.password_file.chmod(0o600)
        cluster = self._cluster(free_port())
        self.prepare_repository()
        cluster.initdb(pwfile=p.password_file, conf=self.own_settings())
        meta = {"format": META_VERSION, "environment": self.name, "port": cluster.port,
                "system_identifier": cluster.system_identifier(),
                "pg_version": self.bins.version, "bin_dir": str(self.bins.bin_dir),
                "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
        write_atomic(p.meta_file, json.dumps(meta, indent=2) + "\n")
        self.strategy.after_create(cluster)
        return cluster

    def cluster(self) -> Cluster:
        """The environment's cluster, after checking that the data directory is the one this
        environment created (same system identifier, same major version)."""
        p = self.paths
        if not p.meta_file.exists():
            if (p.data_dir / "PG_VERSION").exists() or (p.data_dir.exists()
                                                        and any(p.data_dir.iterdir())):
                raise ClusterError(f"{p.data_dir} holds a data directory spectral did not create "
                                   f"(no {p.meta_file.name}); not touching it")
            raise ClusterError(f"the {self.name} environment has no cluster yet",
                               hint="spectral local up")
        meta = self._meta()
        if not (p.data_dir / "PG_VERSION").exists():
            raise ClusterError(f"{p.data_dir} is missing or empty, but {p.meta_file} says a "
                               f"cluster was created there")
        major = (p.data_dir / "PG_VERSION").read_text().strip()
        if major != str(self.bins.major):
            raise ClusterError(f"{p.data_dir} was created by PostgreSQL {major}; the configured "
                               f"binaries are PostgreSQL {self.bins.version}")
        cluster = self._cluster(int(meta["port"]))
        if cluster.system_identifier() != meta.get("system_identifier"):
            raise ClusterError(f"{p.data_dir} belongs to another cluster (system identifier "
                               f"differs from {p.meta_file}); not touching it")
        self.strategy.on_open(cluster)
        return cluster

    # ---- lifecycle ------------------------------------------------------------------------
    def prepare_repository(self) -> None:
        self.strategy.prepare()

    def up(self) -> tuple[Cluster, bool]:
        """`spectral local up`: create (first use) and start; returns the cluster and whether
        this call started it. The server then keeps running after every command, also when a
        command had started it for itself. Serialised with the commands that start and stop
        the server for themselves (`session`): a `local up` or `down` racing a command's start
        would otherwise start a second postmaster on the data directory, or leave the server
        to be stopped by that command's end."""
        with self._start_lock():
            started = self._up()
            self._started_marker.unlink(missing_ok=True)
            return started

    def _start_lock(self) -> AbstractContextManager[None]:
        return file_lock(self.paths.state_dir / "cluster-start.lock")

    def _up(self) -> tuple[Cluster, bool]:
        """Create (first use) and start. Settings are rewritten before every start, so a
        cluster created by an older version of the tool gains continuous archiving too. An
        in-place restore or undo a killed run left is rolled back first (intent.py)."""
        self._recover_interrupted()
        cluster = self.cluster() if self.exists() else self.create()
        if cluster.is_running() and not cluster.stopping():   # stopping: start() waits
            self._release_dead_stream(cluster)
            self._ensure_database(cluster)
            return cluster, False
        self.prepare_repository()
        self.before_start(cluster)
        cluster.write_conf(self.own_settings())
        self._release_dead_stream(cluster)
        cluster.start()
        try:
            self._ensure_database(cluster)
            self.after_start(cluster)
        except BaseException:
            cluster.stop(timeout=30)   # started here, so stopped here when it cannot be used
            raise
        return cluster, True

    def _recover_interrupted(self) -> None:
        from spectral.providers.local.intent import recover_in_place

        self._refuse_during_replacement("starting the server")
        done = recover_in_place(self, None)
        if done is not None:
            self.tell(done.message)

    def _ensure_database(self, cluster: Cluster) -> None:
        """The configured database, created on first use (it is the tool's own cluster)."""
        if self.database == "postgres":
            return
        with cluster.connect("postgres") as conn:
            found = conn.execute("select 1 from pg_database where datname = %s",
                                 (self.database,)).fetchone()
            if found is None:
                conn.execute(f'create database "{self.database}"')

    def _release_dead_stream(self, cluster: Cluster) -> None:
        """A `dr wal stream --synchronous` that was killed cannot remove its setting: with its
        supervisor dead, every commit would wait for ever. Removed here, before anything this
        command commits; what was done is kept for `dr wal status` and `local up` to say."""
        from spectral.providers.local.streamstate import release_dead_synchronous

        self.stream_release = release_dead_synchronous(cluster, self.paths.repo_dir / "stream")

    def down(self) -> bool:
        """`spectral local down`, serialised with the commands' own starts and stops."""
        if not self.exists():
            return False
        with self._start_lock():
            self._refuse_during_replacement("stopping the server")
            self._started_marker.unlink(missing_ok=True)
            return self.cluster().stop()

    def _refuse_during_replacement(self, doing: str) -> None:
        from spectral.providers.local.intent import Journal

        owner = Journal(self.paths.cluster_dir).running_owner()
        if owner is not None:
            raise ClusterError(f"pid {owner} is replacing this environment's data directory "
                               f"(an in-place restore or its undo); not {doing} under it",
                               hint="wait until it has finished")

    @property
    def _started_marker(self) -> Path:
        return self.paths.cluster_dir / ".started-for-a-command"

    @contextmanager
    def session(self) -> Iterator[Cluster]:
        """The running cluster for one command: started if needed, and stopped again by the
        last command using it (a server that `spectral local up` started keeps running).
        Starting and stopping are serialised across processes."""
        from spectral.envlock import Users

        users = Users(self.paths.state_dir / "cluster-users.lock")
        with self._start_lock():
            cluster, started = self._up()
            if started:
                write_atomic(self._started_marker, f"{os.getpid()}\n")
            users.enter()
        try:
            yield cluster
        finally:
            with self._start_lock():
                if users.leave_last() and self._started_marker.exists():
                    self._started_marker.unlink(missing_ok=True)
                    self.cluster().stop()

    def status(self) -> dict[str, Any]:
        info: dict[str, Any] = {"environment": self.name, "state_dir": str(self.paths.state_dir),
                                "exists": self.exists(), "running": False}
        if not self.exists():
            return info
        with suppress(ClusterError):   # what a killed in-place restore left, as `local up` does
            self._recover_interrupted()
        cluster = self.cluster()
        info.update(data_dir=str(cluster.data_dir), port=cluster.port,
                    dsn=f"postgresql://{cluster.superuser}@/{cluster.database}?host="
                        f"{quote(str(cluster.socket_dir), safe='/')}&port={cluster.port}",
                    pid=cluster.pid(), running=cluster.is_running(), pg_bin_dir=str(
                        self.bins.bin_dir), server_version=None, size_bytes=None)
        if info["running"]:
            with cluster.connect() as conn:
                row = conn.execute("select current_setting('server_version'), "
                                   "pg_database_size(current_database())").fetchone()
                assert row is not None
                info["server_version"], info["size_bytes"] = row[0], int(row[1])
                info["size_of"] = "database"
        else:
            info["server_version"] = self.bins.version
            info["size_bytes"] = _dir_size(cluster.data_dir)
            info["size_of"] = "data directory"
        return info


def _dir_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                continue
    return total
