"""The local repository's WAL archive as drills and playbooks read it (`wal_archive()`):
flushed on demand, read as one pg_waldump stream per run of the live lineage's segments."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from spectral.errors import ClusterError, CouldNotVerify
from spectral.pg.binaries import PgBinaries
from spectral.providers.local import walcommits, walread
from spectral.providers.local import window as window_mod
from spectral.providers.local.environment import LocalEnvironment
from spectral.providers.local.repo import Repository
from spectral.providers.local.wal import CommitRecord, format_lsn, parse_commit_line, parse_lsn
from spectral.recovery_target import RecoveryTarget
from spectral.waits import WaitTimeout, wait_until

LSN_RE = re.compile(r"lsn: ([0-9A-F]+/[0-9A-F]+)")


class ArchiveReader:
    """A repository's WAL archive read along its live lineage (find-damage, salvage, the exact
    losses of a rewind); how the archive is made to hold every commit so far (`flush`) is the
    provider's."""

    def __init__(self, bins: PgBinaries, repo: Repository, state_dir: Path,
                 flusher: Callable[[], str | None] = lambda: None) -> None:
        self.bins, self.repo, self.state_dir = bins, repo, state_dir
        self.flusher = flusher

    def flush(self) -> str | None:
        return self.flusher()

    def waldump(self) -> Iterator[str]:
        lin = window_mod.lineage_of(self.repo)
        lines = walread.dump(self.bins, lin.view.where, lin.segments)
        if lin.end_cap is None:
            return lines
        cap = lin.end_cap   # records past the lineage's end belong to an abandoned timeline
        return (ln for ln in lines if (m := LSN_RE.search(ln)) is None
                or parse_lsn(m.group(1)) < cap)

    def locate(self, target: RecoveryTarget) -> int | None:
        from spectral.providers.local.targets import locate

        return locate(self.bins, self.repo, target, window_mod.compute(self.bins, self.repo))

    def newest_commit_before(self, lsn: str) -> datetime | None:
        """The time of the newest commit record before `lsn` on the live lineage (what each
        archived segment holds is remembered: walcommits.py)."""
        lin = window_mod.lineage_of(self.repo)
        walk = walcommits.Walk(self.bins, lin.view.where, lin.segments, lin.end_cap,
                               self.repo.root / window_mod.COMMITS_FILE)
        found = walcommits.newest_commit(walk, low=0, high=parse_lsn(lsn))
        return found[1] if found else None

    def commits_near(self, lsn: str) -> list[CommitRecord] | None:
        """The records that end a transaction on the live lineage from the segment before
        `lsn`'s to the end of the archive, oldest first (which commits a snapshot read at
        `lsn` must have seen: verify/pinning.py); None when the archive does not reach `lsn`."""
        lin = window_mod.lineage_of(self.repo)
        at = parse_lsn(lsn)
        if not lin.segments or lin.segments[-1].end_lsn() <= at:
            return None
        first = lin.view.segno(at) - 1
        return [commit for line in walread.dump(
                    self.bins, lin.view.where, [s for s in lin.segments if s.segno >= first],
                    cap=lin.end_cap, unreadable=[], rmgr="Transaction")
                if (commit := parse_commit_line(line)) is not None]

    def commits_between(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Committed and aborted transactions on the live lineage between two times (reads every
        archived segment from the oldest backup on: fine for days of WAL, slow for months)."""
        lin = window_mod.lineage_of(self.repo)
        summary = walread.summarize(self.bins, lin.view.where, lin.segments, limit=lin.end_cap)
        return [{"xid": rec.xid, "time": rec.time.isoformat(), "lsn": format_lsn(rec.lsn),
                 "committed": rec.committed,
                 "target_just_before": f"--target-xid {rec.xid} --exclusive"}
                for rec in summary.commits if start <= rec.time <= end]


def _exists(path: Path) -> bool:
    """Whether the file is there; one that cannot be looked at counts as gone (the wait then
    rests on the repository's word alone)."""
    try:
        path.stat()
    except OSError:
        return False
    return True


class LocalWalArchive(ArchiveReader):
    """The archive of a cluster spectral runs: flushed by a switch of its server's WAL."""

    def __init__(self, local: LocalEnvironment, bins: PgBinaries, repo: Repository) -> None:
        super().__init__(bins, repo, local.paths.state_dir)
        self.local = local

    def flush(self, timeout: float = 60) -> str | None:
        """When the environment's server is up, switch to a new WAL segment and wait until the
        old one is archived, so that every commit so far is in the archive. Returns the segment,
        or None when the server is down (then the archive is as complete as it gets)."""
        try:
            cluster = self.local.cluster() if self.local.exists() else None
        except ClusterError:      # the source is gone (the disaster being recovered from)
            return None
        if cluster is None or not cluster.is_running():
            return None
        with cluster.connect() as conn:
            # pg_switch_wal returns the end of the last record plus one: the segment to wait for
            # holds the byte before it (with no new WAL, that is one archived already)
            row = conn.execute("select pg_walfile_name(pg_switch_wal() - 1)").fetchone()
        assert row is not None
        segment = str(row[0])
        deadline = time.monotonic() + timeout
        try:
            # archive_command copies one segment in tens of ms: polled as finely as a start,
            # so a drill does not sleep past it (0.1 s growing by half waited ~0.25 s). First
            # the server's word (its archiver marks the segment done once archive_command
            # succeeded: a look at a file, where the repository's listing can cost processes
            # per look: pgbackrest info and repo-ls), then the repository's, once in general.
            ready = cluster.data_dir / "pg_wal" / "archive_status" / f"{segment}.ready"
            wait_until(lambda: not _exists(ready), timeout=timeout, interval=0.01,
                       max_interval=0.05, what=f"archiving of {segment}")
            wait_until(lambda: self.repo.archived(segment),
                       timeout=max(0.0, deadline - time.monotonic()), interval=0.02,
                       max_interval=0.05, what=f"archiving of {segment}")
        except WaitTimeout:
            raise CouldNotVerify(f"WAL segment {segment} was not archived within {timeout:g}s; "
                                 f"check archive_command in the server log") from None
        return segment
