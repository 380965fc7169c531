"""Retention: remove old backups and WAL, never anything a kept backup or the window needs.

The catalog is rewritten first, then the removed backups' directories go: a run killed in
between leaves directories the catalog no longer lists. Every writer of the repository's
`base/` holds its lock, so a directory seen unlisted under that lock has no living owner; the
next expiry or backup removes it (`sweep_unlisted`)."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from spectral.confirm import Confirmer
from spectral.errors import RefusedError
from spectral.providers.base import Backup, BackupKind, Verification
from spectral.providers.capabilities import ExpirePlan
from spectral.providers.local.repo import LocalRepository
from spectral.providers.local.wal import list_segments, parse_lsn, segment_of
from spectral.undo import crash_point

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from spectral.providers.repository import RepositoryStrategy


BACKUP_DIR_RE = re.compile(r"\d{8}T\d{9}[FI]")   # the names backup.new_backup_id gives


def plan_expire(backups: list[Backup], keep: int, window_days: float | None,
                now: datetime | None = None, lineage: set[str] | None = None) -> ExpirePlan:
    """Keep the `keep` newest full backups and every backup needed to reach any point in the
    last `window_days`; a kept incremental keeps its whole chain (pure; unit-tested).
    `lineage`: the backups on the ancestry of the timeline restores follow; the others (a
    timeline an undone restore abandoned) never count as kept, or `--keep 1` could keep only
    a backup that nothing can be restored from."""
    now = now or datetime.now(UTC)
    usable_full = [b for b in backups if b.kind is BackupKind.FULL
                   and b.verification is not Verification.FAILED
                   and (lineage is None or b.id in lineage)]
    usable_full.sort(key=lambda b: b.stop_time)
    kept_full = set(b.id for b in usable_full[-keep:]) if keep > 0 else set()
    if window_days is not None:
        horizon = now - timedelta(days=window_days)
        older = [b for b in usable_full if b.stop_time <= horizon]
        newer = [b for b in usable_full if b.stop_time > horizon]
        kept_full |= {b.id for b in newer}
        if older:   # the newest backup before the horizon is where the window starts
            kept_full.add(older[-1].id)
    by_id = {b.id: b for b in backups}

    def root(b: Backup) -> str | None:
        cur: Backup | None = b
        while cur is not None and cur.kind is BackupKind.INCREMENTAL:
            cur = by_id.get(cur.parent or "")
        return cur.id if cur else None

    keep_ids = {b.id for b in backups if root(b) in kept_full}
    ordered = sorted(backups, key=lambda b: b.stop_time)
    oldest = next((b for b in ordered if b.id in keep_ids), None)
    return ExpirePlan(keep=[b.id for b in ordered if b.id in keep_ids],
                      remove=[b.id for b in ordered if b.id not in keep_ids],
                      oldest_kept_start_lsn=oldest.start_lsn if oldest else None)


def wal_to_remove(repo: LocalRepository, oldest_start_lsn: str | None) -> list[str]:
    """Archived segments entirely before the oldest kept backup's start; history files stay."""
    if oldest_start_lsn is None:
        return []
    size = repo.segment_size()
    first_needed = segment_of(parse_lsn(oldest_start_lsn), size)
    return [s.name for s in list_segments(repo.archive, seg_size=size)
            if s.segno < first_needed and not s.partial]


def apply(repo: LocalRepository, plan: ExpirePlan) -> None:
    from spectral.providers.local.backup import remove_stale_partials

    with repo.locked():
        remove_stale_partials(repo)
        backups = repo.read()
        repo.write([b for b in backups if b.id not in plan.remove])   # catalog first
        crash_point("expire:catalog-written")
        for backup_id in plan.remove:
            shutil.rmtree(repo.backup_dir(backup_id), ignore_errors=True)
        for name in plan.wal_remove:
            (repo.archive / name).unlink(missing_ok=True)
        plan.swept = sweep_unlisted(repo)


def sweep_unlisted(repo: LocalRepository) -> list[str]:
    """Remove the backup directories the catalog does not list (call under `repo.locked()`):
    left by an expiry killed after it rewrote the catalog, or a backup killed between its
    rename and its catalog entry. Nothing is removed without a readable catalog."""
    if not repo.catalog_file.is_file() or not repo.base.is_dir():
        return []
    listed = {b.id for b in repo.read()}
    gone = []
    for path in sorted(repo.base.iterdir()):
        if path.name in listed or path.is_symlink() or not path.is_dir() \
                or not BACKUP_DIR_RE.fullmatch(path.name):
            continue
        shutil.rmtree(path)
        gone.append(path.name)
    return gone


def expire(strategy: RepositoryStrategy, busy: Callable[[str], AbstractContextManager[None]],
           keep: int, window_days: float | None, operator: Confirmer, *,
           dry_run: bool = False) -> ExpirePlan:
    """Plan retention against the live lineage, show it and ask, then remove (under the
    environment's operation lock, `busy`). `dry_run` only plans."""
    from spectral.providers.local.window import lineage

    strategy.forget()
    repo = strategy.repository()
    plan = plan_expire(repo.read(), keep, window_days, lineage=lineage(repo))
    plan.wal_remove = strategy.wal_to_remove(plan)
    if dry_run:
        return plan
    if not (plan.remove or plan.wal_remove):
        with busy("expire"):
            plan.swept = strategy.sweep_unlisted()
        return plan
    details = [f"backup {b}" for b in plan.remove] + [f"{len(plan.wal_remove)} WAL segments"]
    if not operator.confirm("Remove these from the backup repository?", details):
        raise RefusedError("expiry not confirmed; nothing was removed")
    with busy("expire"):
        strategy.apply_expire(plan)
    return plan
