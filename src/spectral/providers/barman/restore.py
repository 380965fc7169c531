"""A restore from Barman Cloud: barman-cloud-restore of the backup into the throwaway data
directory (each tablespace into a folder beside it, never at its location on the team's
server), then PostgreSQL's recovery (local/restore.py's `Recovery`) with
barman-cloud-wal-restore as its restore_command. barman-cloud-restore writes the backup's
backup_label; the recovery settings are spectral's, as for every provider."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from spectral.durable import write_atomic
from spectral.errors import CouldNotVerify
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.pg.osuser import give_to_server, make_owned_dir
from spectral.providers.barman.command import restore_command
from spectral.providers.barman.repo import BarmanRepository
from spectral.providers.base import Progress, RecoverableWindow
from spectral.providers.capabilities import RecoveryReached
from spectral.providers.local.restore import Recovery
from spectral.providers.local.targets import RestorePlan
from spectral.recovery_target import RecoveryTarget


def tablespace_args(tablespaces: list[Any] | None, data: Path) -> list[str]:
    """--tablespace NAME:LOCATION for each of the backup's tablespaces, into
    <data>-tablespaces/<name> (pure; barman's JSON lists each as [name, oid, location])."""
    args: list[str] = []
    for entry in tablespaces or []:
        name = str(entry[0])
        if ":" in name or "/" in name or name in ("", ".", ".."):
            raise CouldNotVerify(f"tablespace {name!r} cannot be relocated by "
                                 f"barman-cloud-restore --tablespace")
        args += ["--tablespace", f"{name}:{data.parent / f'{data.name}-tablespaces' / name}"]
    return args


def never_archive(data: Path) -> None:
    """archive_mode = off in the copy's postgresql.auto.conf, read after every other file: the
    team's postgresql.conf travels in the backup (in the data directory, on most installs but
    Debian's), and its archive_command is barman-cloud-wal-archive into the team's
    destination, which a promoted copy would otherwise push its new timeline into."""
    auto = data / "postgresql.auto.conf"
    text = auto.read_text() if auto.exists() else ""
    write_atomic(auto, text.rstrip("\n") + ("\n" if text.strip() else "")
                 + "archive_mode = 'off'\n", mode=0o600)
    give_to_server(auto)


class BarmanRestorer:
    """`RestoreSteps` (local/restore.py) through barman-cloud; recovery is PostgreSQL's."""

    stops_when_cancelled = False

    def __init__(self, bins: PgBinaries, repo: BarmanRepository) -> None:
        self.bins, self.repo = bins, repo
        self.recovery = Recovery(bins, repo)

    def restore_command(self) -> str:
        return restore_command(self.repo.tool.cfg, self.repo.spool)

    def prepare_recovery(self, cluster: Cluster, conf: dict[str, str],
                         target: RecoveryTarget) -> None:
        self.recovery.prepare_recovery(cluster, conf, target)
        never_archive(cluster.data_dir)

    def recover(self, cluster: Cluster, restore_plan: RestorePlan, window: RecoverableWindow,
                pause: bool, progress: Progress | None) -> RecoveryReached:
        return self.recovery.recover(cluster, restore_plan, window, pause, progress)

    def materialize(self, restore_plan: RestorePlan, data: Path, progress: Progress | None,
                    *, pause: bool = False) -> dict[str, str]:
        backup = restore_plan.chain[-1]
        total = max(1, backup.size_bytes)
        if progress:
            progress("copy", 0, total)
        for d in (self.repo.root, self.repo.spool):
            make_owned_dir(d, 0o750)
        make_owned_dir(data.parent, 0o755)
        make_owned_dir(data, 0o700)
        extra = tablespace_args(self.repo.raw(backup.id).get("tablespaces"), data)
        if extra:
            make_owned_dir(data.parent / f"{data.name}-tablespaces", 0o700)
        try:
            self.repo.tool.restore(backup.id, data, extra)
        except CouldNotVerify as exc:
            shutil.rmtree(data, ignore_errors=True)
            raise CouldNotVerify(f"backup {backup.id} cannot be restored: {exc.message}",
                                 hint="a target before this backup's start restores from an "
                                      "older one; spectral dr drill functional --backup <id> "
                                      "drills another") from None
        data.chmod(0o700)
        if progress:
            progress("copy", total, total)
        return {}
