"""Base backups with pg_basebackup (full, or incremental on PostgreSQL 17+), each verified with
pg_verifybackup right after it is taken and recorded in the repository's catalog.

The copy is written without pg_basebackup's own sync (one fsync per file, then each folder):
it is made durable by one syncfs() of its file system, run while pg_verifybackup reads the
files back (`settle`), and only then renamed to its final name and entered in the catalog."""

from __future__ import annotations

import json
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from spectral.durable import rename_durable
from spectral.errors import CheckFailed, CommandError, UsageError
from spectral.pg.binaries import PgBinaries
from spectral.pg.osuser import make_owned_dir, server_identity
from spectral.pg.verifybackup import damage
from spectral.providers.base import Backup, BackupKind, Verification
from spectral.providers.local.repo import LocalRepository
from spectral.runner import run


def basebackup_argv(bins: PgBinaries, conninfo: str, dest: Path, label: str,
                    incremental_from: Path | None = None) -> list[str]:
    argv = [bins.path("pg_basebackup"), "-d", conninfo, "-D", str(dest), "-F", "p",
            "-X", "stream", "-c", "fast", "--manifest-checksums=CRC32C", "--no-sync",
            "-l", label]
    if incremental_from is not None:
        argv.append(f"--incremental={incremental_from / 'backup_manifest'}")
    return argv


# pg_verifybackup runs pg_waldump through the shell with the WAL directory in double quotes,
# unescaped: a path with one of these breaks that command line
SHELL_UNSAFE_RE = re.compile(r'["\\$`]')


def verifybackup_argv(bins: PgBinaries, backup_dir: Path) -> list[str]:
    argv = [bins.path("pg_verifybackup"), "--quiet"]
    if SHELL_UNSAFE_RE.search(str(backup_dir)):
        argv.append("--no-parse-wal")   # checked by waldump_argvs instead, without a shell
    return [*argv, str(backup_dir)]


def waldump_argvs(bins: PgBinaries, backup_dir: Path) -> list[list[str]]:
    """pg_verifybackup's own WAL check (every WAL range of the manifest read by pg_waldump), as
    argument lists: for a backup whose path the shell would misread."""
    if not SHELL_UNSAFE_RE.search(str(backup_dir)):
        return []
    manifest = json.loads((backup_dir / "backup_manifest").read_text())
    return [[bins.path("pg_waldump"), "--quiet", f"--path={backup_dir / 'pg_wal'}",
             f"--timeline={r['Timeline']}", f"--start={r['Start-LSN']}", f"--end={r['End-LSN']}"]
            for r in manifest["WAL-Ranges"]]


def new_backup_id(kind: BackupKind, now: datetime | None = None) -> str:
    """Sortable by time, to the millisecond: `20261126T223948123F` (F full, I incremental)."""
    now = now or datetime.now(UTC)
    return (now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}"
            + ("F" if kind is BackupKind.FULL else "I"))


def read_backup_facts(backup_dir: Path) -> tuple[str, str, int, datetime]:
    """Start LSN, stop LSN and timeline from backup_manifest; start time from backup_label."""
    manifest = json.loads((backup_dir / "backup_manifest").read_text())
    ranges = manifest["WAL-Ranges"]
    start, stop, tli = ranges[0]["Start-LSN"], ranges[-1]["End-LSN"], int(ranges[-1]["Timeline"])
    label = (backup_dir / "backup_label").read_text()
    m = re.search(r"START TIME: (\S+ \S+)( \S+)?", label)
    started = datetime.fromisoformat(m.group(1)).replace(tzinfo=UTC) if m else datetime.now(UTC)
    return start, stop, tli, started


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def verify(bins: PgBinaries, backup_dir: Path, incremental: bool) -> tuple[Verification, str]:
    """pg_verifybackup checks every file against the manifest's checksums, and the WAL."""
    verification, detail, _damage = inspect(bins, backup_dir, incremental)
    return verification, detail


def inspect(bins: PgBinaries, backup_dir: Path, incremental: bool
            ) -> tuple[Verification, str, list[str]]:
    """`verify`, and the damage pg_verifybackup proved (files named, pg/verifybackup.py):
    empty when it passed, or failed without proving any (a file it could not read)."""
    if incremental:
        # pg_verifybackup cannot check an incremental backup on its own; its files are checked
        # when the chain is combined at restore time (pg_combinebackup verifies them then).
        return Verification.NOT_VERIFIED, "incremental: verified when combined at restore", []
    try:
        run(verifybackup_argv(bins, backup_dir), timeout=3600, run_as=server_identity())
        for argv in waldump_argvs(bins, backup_dir):
            run(argv, timeout=3600, run_as=server_identity())
    except CommandError as exc:
        return Verification.FAILED, exc.message, damage(exc.stderr)
    return (Verification.VERIFIED, "pg_verifybackup: every file and the WAL match the manifest",
            [])


def sync_argv(backup_dir: Path) -> list[str]:
    """coreutils' `sync --file-system`: one syncfs() of each file system holding the backup
    (its folder, and a tablespace's folder elsewhere), instead of an fsync of every file."""
    tablespaces = backup_dir / "pg_tblspc"
    elsewhere = sorted(str(p.resolve()) for p in tablespaces.iterdir()) \
        if tablespaces.is_dir() else []
    return ["sync", "--file-system", str(backup_dir), *elsewhere]


def settle(bins: PgBinaries, backup_dir: Path, incremental: bool) -> tuple[Verification, str]:
    """Verify a backup just written while its files go to disk: pg_verifybackup reads them
    back from memory as the sync writes them out, so the check costs no more than the sync.
    A sync that fails raises (CommandError): the copy is not on disk, whatever it held."""
    with ThreadPoolExecutor(1) as pool:
        synced = pool.submit(run, sync_argv(backup_dir), timeout=3600)
        try:
            checked = verify(bins, backup_dir, incremental)
        finally:
            synced.result()
    return checked


def server_timeline(conninfo: str) -> int:
    """The timeline the server writes on now."""
    from spectral.pg.conn import connect

    with connect(conninfo) as conn:
        row = conn.execute("select timeline_id from pg_control_checkpoint()").fetchone()
    return int(row[0]) if row else 1


def remove_stale_partials(repo: LocalRepository) -> list[str]:
    """Copies left by a backup that was killed. Called with the repository lock held, which
    every backup holds for its whole run: any partial copy seen then has no living owner."""
    gone = []
    for partial in sorted(repo.base.glob("*.partial")) if repo.base.is_dir() else []:
        if partial.is_dir() and not partial.is_symlink():
            shutil.rmtree(partial, ignore_errors=True)
            gone.append(partial.name)
    return gone


def _parent(bins: PgBinaries, repo: LocalRepository, conninfo: str) -> Backup:
    """The backup an incremental one builds on: the newest on the server's history."""
    if bins.major < 17:
        raise UsageError(f"incremental backups need PostgreSQL 17 or newer "
                         f"(this is {bins.version})")
    from spectral.providers.local.window import usable_backups

    usable = usable_backups(repo, server_timeline(conninfo))
    if not usable:
        raise UsageError("an incremental backup needs an earlier backup on this "
                         "server's timeline history to build on",
                         hint="take a full backup first: spectral dr backup")
    return usable[-1]


def _copy(bins: PgBinaries, conninfo: str, partial: Path, backup_id: str,
          parent: tuple[Backup, Path] | None) -> None:
    """pg_basebackup into `partial` (on `parent`, incremental); an incremental backup the
    server refuses is said as what to do instead."""
    try:
        run(basebackup_argv(bins, conninfo, partial, f"spectral {backup_id}",
                            parent[1] if parent else None),
            timeout=24 * 3600, run_as=server_identity(), forks=True)
    except CommandError as exc:
        if parent is not None and "WAL summaries are required" in exc.message:
            # the server began a new history (an in-place restore or an undo recovers with
            # the summarizer off) and has no summaries since the parent's start
            raise UsageError(f"an incremental backup on {parent[0].id} needs WAL summaries "
                             f"the server does not have (its history was rewound since)",
                             hint="take a full backup first: spectral dr backup") from None
        if parent is not None and "manifest requires WAL from" in exc.message:
            # the parent lies on a history the server has left (it was rewound to before
            # the parent's end; chosen by a timeline history the archive no longer has)
            raise UsageError(f"an incremental backup cannot build on {parent[0].id}: the "
                             f"server's history no longer passes through it "
                             f"({exc.message.rsplit('ERROR:', 1)[-1].strip()})",
                             hint="take a full backup first: spectral dr backup") from None
        raise


def take_backup(bins: PgBinaries, repo: LocalRepository, conninfo: str, server_version: str, *,
                incremental: bool = False) -> Backup:
    """Take, verify and record one base backup. The backup is written under a temporary name
    and entered in the catalog only when complete: a failure (full disk, lost connection,
    Ctrl-C) leaves the catalog as it was and removes the partial copy."""
    kind = BackupKind.INCREMENTAL if incremental else BackupKind.FULL
    with repo.locked():
        backups = repo.read()
        parent = _parent(bins, repo, conninfo) if incremental else None
        backup_id = new_backup_id(kind)
        taken = {b.id for b in backups}
        while backup_id in taken or repo.backup_dir(backup_id).exists():   # same millisecond
            time.sleep(0.002)
            backup_id = new_backup_id(kind)
        make_owned_dir(repo.base, 0o750)
        remove_stale_partials(repo)
        final = repo.backup_dir(backup_id)
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        make_owned_dir(partial, 0o700)
        started = time.monotonic()
        try:
            _copy(bins, conninfo, partial, backup_id,
                  (parent, repo.backup_dir(parent.id)) if parent else None)
            duration = time.monotonic() - started
            stopped_at = datetime.now(UTC)
            start_lsn, stop_lsn, tli, started_at = read_backup_facts(partial)
            verification, detail = settle(bins, partial, incremental)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        rename_durable(partial, final)   # on disk before the catalog names it
        backup = Backup(backup_id, kind, parent.id if parent else None, start_lsn, stop_lsn,
                        started_at, stopped_at, tli, dir_size(final), duration,
                        server_version, verification, detail)
        repo.write([*backups, backup])
    if verification is Verification.FAILED:
        raise CheckFailed(f"backup {backup_id} failed verification and will never be restored: "
                          f"{detail}")
    return backup
