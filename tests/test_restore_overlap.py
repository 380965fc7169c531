"""A restore to the latest point copies its backup while the archive is flushed and the window
read (local/throwaway.py), when its restorer stops on cancel (pgBackRest's): a refused plan
stops the copy, its whole process group, and leaves no instance behind. The plan's side on a
real repository is tests/test_pgbackrest.py's (every restore there to the latest point takes
this path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from spectral.errors import UsageError
from spectral.providers.base import Backup
from spectral.providers.local.throwaway import Throwaways
from spectral.providers.pgbackrest.repo import backup_from_info
from spectral.recovery_target import LatestTarget, LsnTarget
from spectral.runner import run
from spectral.waits import wait_until

FULL = {"archive": {"start": "000000010000000000000003"}, "database": {"id": 1},
        "info": {"size": 1}, "label": "20261130-162907F",
        "lsn": {"start": "0/3000028", "stop": "0/3000100"}, "prior": None,
        "timestamp": {"start": 1796056147, "stop": 1796056149}, "type": "full"}


class Catalog:
    """What the early plan reads (window.usable_backups): one backup, no WAL yet."""

    root = archive = Path("/nonexistent")
    checked_before_restore = True

    def read(self) -> list[Backup]:
        return [backup_from_info(FULL, {1: "15"}, None)]

    def chain(self, backup: Backup) -> list[Backup]:
        return [backup]

    def wal_files(self) -> dict[Any, Path]:
        return {}

    def segment_size(self) -> int:
        return 16 << 20

    def history_timelines(self) -> list[int]:
        return []

    def backup_history(self, backup: Backup) -> str | None:
        return None


class SlowCopy:
    """A restorer whose copy is one long program (as `pgbackrest restore` is)."""

    stops_when_cancelled = True

    def __init__(self, pidfile: Path) -> None:
        self.pidfile, self.copies = pidfile, 0

    def materialize(self, restore_plan: Any, data: Path, progress: Any, *,
                    pause: bool = False) -> dict[str, str]:
        self.copies += 1
        run(["sh", "-c", f"sleep 600 & echo $! > {self.pidfile}; wait"], timeout=600)
        return {}


def _gone(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return "Z" in stat.read_text().split(")")[1][:3]
    except OSError:
        return True


def test_a_refused_plan_stops_the_copy_it_overlapped(tmp_path: Path) -> None:
    pidfile = tmp_path / "copy.pid"
    restorer = SlowCopy(pidfile)

    def refused(target: Any) -> Any:
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=60,
                   what="the copy started")
        raise UsageError("the latest point cannot be restored exactly")

    instances = tmp_path / "instances"
    throwaways = Throwaways(None, Catalog(), instances, "postgres", refused,  # type: ignore[arg-type]
                            dict)
    with pytest.raises(UsageError, match="cannot be restored exactly"):
        throwaways.restore(LatestTarget(), restorer)   # type: ignore[arg-type]
    assert restorer.copies == 1
    wait_until(lambda: _gone(int(pidfile.read_text())), timeout=10, what="the copy stopped")
    assert not any(instances.iterdir())


def test_only_the_latest_point_is_copied_before_its_plan(tmp_path: Path) -> None:
    """Another target's restore command line depends on its plan: planned first (here the
    window refuses before anything is copied)."""
    restorer = SlowCopy(tmp_path / "copy.pid")

    def refused(target: Any) -> Any:
        raise UsageError("outside the window")

    throwaways = Throwaways(None, Catalog(), tmp_path / "instances", "postgres",  # type: ignore[arg-type]
                            refused, dict)
    with pytest.raises(UsageError, match="outside the window"):
        throwaways.restore(LsnTarget(0x3000200), restorer)   # type: ignore[arg-type]
    assert restorer.copies == 0
