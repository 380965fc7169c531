"""The pgBackRest provider: the local provider's drills, window, restores, find-damage and
ledger, with pgBackRest's backups, archive and restore underneath (see the package doc)."""

from __future__ import annotations

import time
from datetime import UTC
from typing import TYPE_CHECKING

from spectral.confirm import Operator
from spectral.errors import UsageError
from spectral.ledger import Ledger
from spectral.providers.base import (
    Backup,
    ReadinessItem,
    RecoverableWindow,
    Report,
    Verification,
)
from spectral.providers.capabilities import NO_OPTIONS, Options, refuse_options
from spectral.providers.local.provider import LocalProvider, refuse_readiness_options
from spectral.providers.pgbackrest.environment import PgBackRestEnvironment
from spectral.providers.pgbackrest.repo import PgBackRestRepository
from spectral.providers.pgbackrest.restore import PgBackRestRestorer

if TYPE_CHECKING:
    from spectral.providers.capabilities import ExpirePlan


class PgBackRestProvider(LocalProvider):
    kind = "pgbackrest"

    def __init__(self, local: PgBackRestEnvironment, report: Report | None = None,
                 ledger: Ledger | None = None) -> None:
        self.pgb_env = local
        super().__init__(local, report, ledger)

    @property
    def pgb_repo(self) -> PgBackRestRepository:
        assert isinstance(self.repo, PgBackRestRepository)
        return self.repo

    def make_restorer(self, process_max: int | None = None) -> PgBackRestRestorer:
        return PgBackRestRestorer(self.bins, self.pgb_repo, self.pgb_env.tool,
                                  process_max or self.pgb_env.cfg.process_max)

    def restorer_for(self, options: Options) -> PgBackRestRestorer:
        process_max = options.get("process_max")
        return self.make_restorer(process_max if isinstance(process_max, int) else None)

    def backup_options(self) -> PgBackRestOptions:
        return PgBackRestOptions(self.describe(), len(self.pgb_env.cfg.repositories))

    def wal_stream(self) -> None:
        return None     # pgBackRest archives with archive-push; see `instead`

    def instead(self, capability: str) -> str:
        if capability == "wal_stream":
            return (f"it archives WAL with pgbackrest archive-push (every "
                    f"{self.pgb_env.own_settings()['archive_timeout']} at the latest), and "
                    f"spectral dr wal status shows the archive's lag")
        return ""

    def describe(self) -> str:
        return f"environment {self.local.name} (pgBackRest stanza {self.pgb_env.cfg.stanza})"

    # ---- backups and the window ---------------------------------------------------------------
    def backup(self, options: Options = NO_OPTIONS, *, incremental: bool = False) -> Backup:
        """`pgbackrest backup --type full|diff|incr`. The backup is `not_verified` until a
        restore reads it (pgBackRest checks every file's checksum as it restores): a drill
        verifies it; `pgbackrest verify` of the whole repository would cost a read of every
        backup kept, on every backup."""
        args = backup_args(self.backup_options().parse(
            {**options, "type": "incr"} if incremental else options))
        with self.busy("backup"), self.local.session():
            before = {b.id for b in self.backups()}
            started = time.monotonic()
            self.pgb_env.tool.run("backup", *args, timeout=24 * 3600)
            took = time.monotonic() - started
            new = [b for b in self.backups() if b.id not in before]
        if not new:
            raise UsageError("pgbackrest backup finished but pgbackrest info lists no new "
                             "backup")
        b = new[-1]
        return Backup(b.id, b.kind, b.parent, b.start_lsn, b.stop_lsn, b.start_time,
                      b.stop_time, b.timeline, b.size_bytes, took, b.server_version,
                      b.verification, b.verification_detail, b.status, b.physical)

    def backups(self) -> list[Backup]:
        self.pgb_repo.forget()
        return self.repo.read()

    def window(self) -> RecoverableWindow:
        self.pgb_repo.forget()
        return super().window()

    def pitr_readiness(self, operator: Operator, report: Report,
                       options: Options = NO_OPTIONS) -> list[ReadinessItem]:
        refuse_readiness_options(options)
        backups = [b for b in self.backups() if b.verification is not Verification.FAILED]
        archiving, note = False, "the environment's server is not running"
        cluster = self.local.cluster() if self.local.exists() else None
        if cluster is not None and cluster.is_running():
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

    # ---- retention ----------------------------------------------------------------------------
    def apply_expire(self, plan: ExpirePlan) -> None:
        """pgBackRest removes what the plan removes: each full backup set with `expire --set`
        (its differential and incremental backups go with it, and the WAL only they needed)."""
        by_id = {b.id: b for b in self.backups()}
        for label in plan.remove:
            b = by_id.get(label)
            if b is not None and b.parent is None:
                self.pgb_env.tool.run("expire", f"--set={label}", timeout=24 * 3600)
        self.pgb_repo.forget()
        self.pgb_repo.prune_mirror(set(self.pgb_repo.listing()))

    def wal_to_remove(self, plan: ExpirePlan) -> list[str]:
        from spectral.providers.local.wal import parse_lsn, parse_segment, segment_of

        if plan.oldest_kept_start_lsn is None:
            return []
        first = segment_of(parse_lsn(plan.oldest_kept_start_lsn))
        return sorted(n for n in self.pgb_repo.listing()
                      if (s := parse_segment(n)) is not None and s.segno < first)


class PgBackRestOptions:
    """pgBackRest's backup types, repositories and processes."""

    def __init__(self, who: str, repositories: int) -> None:
        self.who, self.repositories = who, repositories

    def declared(self) -> dict[str, str]:
        return {"type": "full, diff or incr", "repo": "the repository to back up into",
                "process_max": "processes for this backup or restore"}

    def parse(self, given: Options, *, restore: bool = False) -> Options:
        declared = self.declared()
        refuse_options(given, {"process_max": declared["process_max"]} if restore else declared,
                       self.who)
        kind, repo = given.get("type", "full"), given.get("repo")
        if kind not in ("full", "diff", "incr"):
            raise UsageError(f"--type {kind!r}: expected full, diff or incr")
        if repo is not None and not (isinstance(repo, int) and 1 <= repo <= self.repositories):
            raise UsageError(f"--repo {repo}: this environment has {self.repositories} "
                             f"repositories")
        process_max = given.get("process_max")
        if process_max is not None and not (isinstance(process_max, int)
                                            and 1 <= process_max <= 64):
            raise UsageError(f"--process-max {process_max}: expected 1 to 64")
        return dict(given)


def backup_args(options: Options) -> list[str]:
    """`pgbackrest backup`'s options for parsed ones (pure)."""
    args = [f"--type={options.get('type', 'full')}"]
    if options.get("repo") is not None:
        args.append(f"--repo={options['repo']}")
    if options.get("process_max") is not None:
        args.append(f"--process-max={options['process_max']}")
    return args
