"""The pgBackRest repository strategy: a cluster spectral runs, archiving with
`pgbackrest archive-push`, backed up and restored by pgBackRest (POSIX or S3 repositories), with
pgBackRest's configuration written into the state directory before every start and the stanza
created on the first (providers/repository.py: the host and a strategy make a managed cluster;
the window, targets and WAL reading are the same as the local repository's, over repo.py)."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from spectral.durable import write_atomic
from spectral.errors import UsageError
from spectral.pg.cluster import Cluster
from spectral.pg.osuser import give_to_server, make_owned_dir
from spectral.providers.base import Backup, ReadinessItem, Verification
from spectral.providers.capabilities import ExpirePlan, Options
from spectral.providers.local.recovery import command_word
from spectral.providers.pgbackrest import command
from spectral.providers.pgbackrest.command import PgBackRest
from spectral.providers.pgbackrest.conf import ClusterAddress, PgBackRestPaths, render, repo_path
from spectral.providers.pgbackrest.options import PgBackRestOptions, backup_args
from spectral.providers.pgbackrest.repo import PgBackRestRepository
from spectral.providers.pgbackrest.restore import PgBackRestRestorer
from spectral.providers.pgbackrest.settings import PgBackRestConfig, RepoType

if TYPE_CHECKING:
    from spectral.providers.local.environment import LocalEnvironment

ARCHIVE_TIMEOUT = "60s"   # bounds the RPO: a segment is pushed at least once a minute


class PgBackRestStrategy:
    kind = "pgbackrest"
    streams_wal = False      # archive-push; see `instead`

    def __init__(self, host: LocalEnvironment, cfg: PgBackRestConfig,
                 secrets: dict[str, str]) -> None:
        self.name, self.paths, self.bins = host.name, host.paths, host.bins
        self.cfg = cfg
        self.pgb = PgBackRestPaths(host.paths.state_dir / "pgbackrest")
        self.tool = PgBackRest(self.pgb.conf_file, cfg.stanza, dict(secrets))
        self.repo = PgBackRestRepository(self.pgb.mirror, tool=self.tool,
                                         repos=len(cfg.repositories))

    # ---- the server's side ------------------------------------------------------------------
    def archive_command(self) -> str:
        return (f"{command.BINARY} {command_word(f'--config={self.pgb.conf_file}')} "
                f"{command_word(f'--stanza={self.cfg.stanza}')} archive-push %p")

    def server_settings(self) -> dict[str, str]:
        return {"archive_mode": "on", "archive_command": self.archive_command(),
                "archive_timeout": ARCHIVE_TIMEOUT}

    def server_env(self) -> dict[str, str]:
        return dict(self.tool.env)

    def prepare(self) -> None:
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

    def before_create(self) -> None:
        command.check_supports(self.bins.major)
        self.prepare()

    def after_create(self, cluster: Cluster) -> None:
        self.write_configuration(cluster.port)

    def on_open(self, cluster: Cluster) -> None:
        if not self.pgb.conf_file.exists():
            self.write_configuration(cluster.port)

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

    # ---- the repository ----------------------------------------------------------------------
    def describe(self, environment: str) -> str:
        return f"environment {environment} (pgBackRest stanza {self.cfg.stanza})"

    def repository(self) -> PgBackRestRepository:
        return self.repo

    def forget(self) -> None:
        self.repo.forget()

    def backup_options(self) -> PgBackRestOptions:
        return PgBackRestOptions(self.describe(self.name), len(self.cfg.repositories))

    def take(self, conninfo: str, server_version: str, options: Options) -> Backup:
        """`pgbackrest backup --type full|diff|incr`. The backup is `not_verified` until a
        restore reads it (pgBackRest checks every file's checksum as it restores): a drill
        verifies it; `pgbackrest verify` of the whole repository would cost a read of every
        backup kept, on every backup."""
        self.repo.forget()
        before = {b.id for b in self.repo.read()}
        started = time.monotonic()
        self.tool.run("backup", *backup_args(options), timeout=24 * 3600)
        took = time.monotonic() - started
        self.repo.forget()
        new = [b for b in self.repo.read() if b.id not in before]
        if not new:
            raise UsageError("pgbackrest backup finished but pgbackrest info lists no new "
                             "backup")
        b = new[-1]
        return Backup(b.id, b.kind, b.parent, b.start_lsn, b.stop_lsn, b.start_time,
                      b.stop_time, b.timeline, b.size_bytes, took, b.server_version,
                      b.verification, b.verification_detail, b.status, b.physical)

    def restorer(self, options: Options) -> PgBackRestRestorer:
        process_max = options.get("process_max")
        return PgBackRestRestorer(self.bins, self.repo, self.tool,
                                  process_max if isinstance(process_max, int)
                                  else self.cfg.process_max)

    def sweep_unlisted(self) -> list[str]:
        return []     # pgBackRest's repository is pgBackRest's to tidy

    def apply_expire(self, plan: ExpirePlan) -> None:
        """pgBackRest removes what the plan removes: each full backup set with `expire --set`
        (its differential and incremental backups go with it, and the WAL only they needed)."""
        by_id = {b.id: b for b in self.repo.read()}
        for label in plan.remove:
            b = by_id.get(label)
            if b is not None and b.parent is None:
                self.tool.run("expire", f"--set={label}", timeout=24 * 3600)
        self.repo.forget()
        self.repo.prune_mirror(set(self.repo.listing()))

    def wal_to_remove(self, plan: ExpirePlan) -> list[str]:
        from spectral.providers.local.wal import parse_lsn, parse_segment, segment_of

        if plan.oldest_kept_start_lsn is None:
            return []
        size = self.repo.segment_size()
        first = segment_of(parse_lsn(plan.oldest_kept_start_lsn), size)
        return sorted(n for n in self.repo.listing()
                      if (s := parse_segment(n, size)) is not None and s.segno < first)

    def readiness(self, cluster: Cluster | None) -> list[ReadinessItem]:
        self.repo.forget()
        backups = [b for b in self.repo.read() if b.verification is not Verification.FAILED]
        archiving, note = False, "the environment's server is not running"
        if cluster is not None:
            with cluster.connect() as conn:
                row = conn.execute("select last_archived_wal, last_archived_time, "
                                   "last_failed_time from pg_stat_archiver").fetchone()
            assert row is not None
            last, at, failed_at = row
            archiving = last is not None and (failed_at is None or failed_at < at)
            note = (f"archive-push: last segment {last} at "
                    f"{at.astimezone(UTC).isoformat(timespec='seconds')}" if archiving else
                    f"archive-push is failing since {failed_at} (see the server log)"
                    if failed_at else "nothing archived yet")
        return [ReadinessItem("base backups in place (pgBackRest)", bool(backups),
                              f"backup {backups[-1].id} ({backups[-1].verification.value})"
                              if backups else "no backup (spectral dr backup)"),
                ReadinessItem("PITR enabled: WAL archived by pgbackrest archive-push",
                              archiving, note)]

    def instead(self, capability: str) -> str:
        if capability == "wal_stream":
            return (f"it archives WAL with pgbackrest archive-push (every {ARCHIVE_TIMEOUT} at "
                    f"the latest), and spectral dr wal status shows the archive's lag")
        return ""
