"""A restore from a plain archive: the backup folder copied (plain) or extracted (tar, with its
pg_wal.tar when there is one) into the throwaway data directory, checked against its
backup_manifest with pg_verifybackup before recovery starts (a damaged file is named and the
restore refused), and WAL fetched from the team's folder, decompressed when it is compressed.
Recovery itself is PostgreSQL's (local/restore.py's `Recovery`).

A backup's tablespaces are copied into the throwaway too: as taken, a plain backup's
pg_tblspc links point at the team's folder (`pg_basebackup -T`) and a tar backup's
tablespace_map at the live server's tablespace, and recovery would write there."""

from __future__ import annotations

import os
from pathlib import Path

from spectral.errors import BackupDamaged, CommandError, CouldNotVerify
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.osuser import give_to_server, make_owned_dir, server_identity
from spectral.pg.verifybackup import damage
from spectral.providers.archive.backups import DECOMPRESS, BaseBackup, find, tar_in
from spectral.providers.archive.repo import ArchiveRepository
from spectral.providers.base import Backup, Progress, RecoverableWindow
from spectral.providers.capabilities import RecoveryReached
from spectral.providers.local.copy import copy_tree
from spectral.providers.local.recovery import command_word, whole_segment
from spectral.providers.local.restore import OLDER_BACKUP, RESTORE_TIMEOUT, Recovery
from spectral.providers.local.targets import RestorePlan
from spectral.recovery_target import RecoveryTarget
from spectral.runner import run


def archive_restore_command(wal_dir: Path, seg_size: int) -> str:
    """The segment from the team's folder: as it is (a plain segment of the wrong size for
    the lineage, `seg_size`, a truncated one, is not handed over: the WAL ends there, a gap
    the window names), else decompressed (pure; what PostgreSQL puts for %f and %p needs no
    quotes)."""
    w = command_word(f"{wal_dir}/")
    whole = whole_segment(w, seg_size)
    tries = [f'{{ test -f {w}%f && {{ {whole}; }} && cp {w}%f "%p"; }}']
    tries += [f'{{ test -f {w}%f{suffix} && {program} -dc {w}%f{suffix} > "%p"; }}'
              for suffix, program in DECOMPRESS.items()]
    return " || ".join(tries)


class ArchiveRestorer:
    """`RestoreSteps` (local/restore.py) from a plain archive."""

    stops_when_cancelled = False

    def __init__(self, bins: PgBinaries, repo: ArchiveRepository) -> None:
        self.bins, self.repo = bins, repo
        self.recovery = Recovery(bins, repo)

    def restore_command(self) -> str:
        return archive_restore_command(self.repo.wal_dir, self.repo.segment_size())

    def prepare_recovery(self, cluster: Cluster, conf: dict[str, str],
                         target: RecoveryTarget) -> None:
        self.recovery.prepare_recovery(cluster, conf, target)

    def recover(self, cluster: Cluster, restore_plan: RestorePlan, window: RecoverableWindow,
                pause: bool, progress: Progress | None) -> RecoveryReached:
        return self.recovery.recover(cluster, restore_plan, window, pause, progress)

    def materialize(self, restore_plan: RestorePlan, data: Path, progress: Progress | None,
                    *, pause: bool = False) -> dict[str, str]:
        backup = restore_plan.chain[-1]
        found = find(self.repo.folder(backup.id))
        assert found is not None      # folder() found it
        return unpack_backup(self.bins, found, backup, data, progress)


def unpack_backup(bins: PgBinaries, found: BaseBackup, backup: Backup, data: Path,
                  progress: Progress | None) -> dict[str, str]:
    """A backup folder on this host copied (plain) or extracted (tar) into `data` with its
    tablespaces, then checked against its manifest; the recovery settings it needs (none)."""
    total = max(1, backup.size_bytes)
    make_owned_dir(data, 0o700)
    if found.tar is None:
        copy_tree(found.path, data, progress=(lambda done: progress(
            "copy", min(done, total), total)) if progress else None)
    else:
        if progress:
            progress("copy", 0, total)
        _extract(found.tar, data)
        if found.wal_tar is not None:
            _extract(found.wal_tar, data / "pg_wal")
        if progress:
            progress("copy", total, total)
    _own_tablespaces(found, data)
    give_to_server(data)
    _check(bins, found, backup.id, data)
    # recovery would link each tablespace of the map to the live server's folder again;
    # the links to the throwaway's own are made (the manifest lists the map: checked first)
    (data / "tablespace_map").unlink(missing_ok=True)
    return {}


def _check(bins: PgBinaries, found: BaseBackup, backup_id: str, data: Path) -> None:
    """pg_verifybackup of the restored files against the backup's manifest (the WAL is
    the team's archive's, checked by the window)."""
    if found.manifest is None:
        return
    try:
        run([bins.path("pg_verifybackup"), "--quiet", "--no-parse-wal",
             f"--manifest-path={found.manifest}", str(data)],
            timeout=RESTORE_TIMEOUT, run_as=server_identity())
    except CommandError as exc:
        if found_damage := damage(exc.stderr):   # proven damaged: a FAIL, named
            raise BackupDamaged(backup_id, found_damage, hint=OLDER_BACKUP) from None
        raise CouldNotVerify(f"backup {backup_id} fails pg_verifybackup against its "
                             f"backup_manifest and is not restored: {exc.message}",
                             hint="a target before this backup's start restores from an "
                                  "older one; spectral dr drill functional --backup <id> "
                                  "drills another") from None


def _extract(tar: Path, dest: Path) -> None:
    make_owned_dir(dest, 0o700)
    argv = ["tar", "-x", "-f", str(tar), "-C", str(dest)]
    if tar.suffix in DECOMPRESS:
        argv.append(f"--use-compress-program={DECOMPRESS[tar.suffix]}")
    try:
        run(argv, timeout=RESTORE_TIMEOUT)
    except CommandError as exc:
        raise CouldNotVerify(f"{tar} cannot be extracted: {exc.message}") from None


def _own_tablespaces(found: BaseBackup, data: Path) -> None:
    """Each tablespace of the backup copied (plain) or extracted (tar, its <oid>.tar) into
    the throwaway's own folder and linked from pg_tblspc; nothing left pointing outside it."""
    links, home = data / "pg_tblspc", data.parent / "tablespaces"
    for oid, where in tablespace_map(data / "tablespace_map").items():
        if (links / oid).is_symlink():
            continue            # an extracted tar backup whose links were made: below
        tar = tar_in(found.path, oid) if found.tar is not None else None
        if tar is None:         # else recovery would link it to the live server's folder
            raise CouldNotVerify(f"backup {found.id}: tablespace {oid} ({where}) has no "
                                 f"{oid}.tar in {found.path}, and is not restored")
        _extract(tar, make_owned_dir(home / oid, 0o700))
        make_owned_dir(links, 0o700)
        (links / oid).symlink_to(home / oid)
    for link in sorted(links.iterdir()) if links.is_dir() else []:
        if link.is_symlink() and not link.resolve().is_relative_to(data.parent.resolve()):
            source = link.parent / os.readlink(link)
            if not source.is_dir():
                raise CouldNotVerify(f"backup {found.id}: tablespace {link.name} links to "
                                     f"{source}, which is not a folder spectral can read")
            copy_tree(source, make_owned_dir(home / link.name, 0o700))
            link.unlink()
            link.symlink_to(home / link.name)
    if home.is_dir():
        give_to_server(home)


def tablespace_map(path: Path) -> dict[str, str]:
    """A tar backup's tablespace_map: oid -> the live server's location (PostgreSQL writes
    one "<oid> <path>" line per tablespace)."""
    if not path.is_file():
        return {}
    found = {}
    for line in path.read_text(errors="replace").splitlines():
        oid, _, where = line.partition(" ")
        if not oid.isdigit():       # it becomes a folder name: an oid, nothing else
            raise CouldNotVerify(f"{path.name}: not a tablespace line: {line!r}")
        found[oid] = where
    return found
