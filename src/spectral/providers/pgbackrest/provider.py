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
from spectral.providers.local.provider import LocalProvider
from spectral.providers.pgbackrest.environment import PgBackRestEnvironment
from spectral.providers.pgbackrest.repo import PgBackRestRepository
from spectral.providers.pgbackrest.restore import PgBackRestRestorer

if TYPE_CHECKING:
    from pathlib import Path

    from spectral.providers.local.expire import ExpirePlan


class PgBackRestProvider(LocalProvider):
    kind = "pgbackrest"

    def __init__(self, local: PgBackRestEnvironment, report: Report | None = None,
                 ledger: Ledger | None = None) -> None:
        self.pgb_env = local
        super().__init__(local, report, ledger)
        self._process_max: int | None = None

    @property
    def process_max(self) -> int | None:
        """Processes for backups and restores (None: the environment's process_max)."""
        return self._process_max

    @process_max.setter
    def process_max(self, value: int | None) -> None:
        self._process_max = value
        restorer = self.restorer
        assert isinstance(restorer, PgBackRestRestorer)
        restorer.process_max = value or self.pgb_env.cfg.process_max

    @property
    def pgb_repo(self) -> PgBackRestRepository:
        assert isinstance(self.repo, PgBackRestRepository)
        return self.repo

    def make_restorer(self) -> PgBackRestRestorer:
        return PgBackRestRestorer(self.bins, self.pgb_repo, self.pgb_env.tool,
                                  self.pgb_env.cfg.process_max)

    def describe(self) -> str:
        return f"environment {self.local.name} (pgBackRest stanza {self.pgb_env.cfg.stanza})"

    # ---- backups and the window ---------------------------------------------------------------
    def backup(self, *, incremental: bool = False, differential: bool = False,
               repo: int | None = None) -> Backup:
        """`pgbackrest backup --type full|diff|incr`. The backup is `not_verified` until a
        restore reads it (pgBackRest checks every file's checksum as it restores): a drill
        verifies it; `pgbackrest verify` of the whole repository would cost a read of every
        backup kept, on every backup."""
        kind = "incr" if incremental else "diff" if differential else "full"
        with self.busy("backup"), self.local.session():
            before = {b.id for b in self.backups()}
            started = time.monotonic()
            args = [f"--type={kind}"]
            if repo is not None:
                if not 1 <= repo <= len(self.pgb_env.cfg.repositories):
                    raise UsageError(f"--repo {repo}: this environment has "
                                     f"{len(self.pgb_env.cfg.repositories)} repositories")
                args.append(f"--repo={repo}")
            if self.process_max is not None:
                args.append(f"--process-max={self.process_max}")
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

    def stream_dir(self) -> Path:
        raise UsageError(f"{self.describe()} archives WAL with pgbackrest archive-push (every "
                         f"{self.pgb_env.own_settings()['archive_timeout']} at the latest); "
                         f"pg_receivewal streaming is for local environments",
                         hint="spectral dr wal status shows the archive's lag")

    def pitr_readiness(self, addon: str | None, operator: Operator,
                       report: Report) -> list[ReadinessItem]:
        if addon is not None:
            raise UsageError("--pitr-addon is for Supabase environments")
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
