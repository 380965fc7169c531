"""Room on a filesystem before something large is written there. A restored copy lands on a
disk that may also hold the source database (a `local` environment, or a team's own server
running the drill beside its repository): a copy that fills it stops the copy's recovery with
a PANIC and can stop the source's server too. So a restore first checks that the copy fits
and leaves a reserve free: a refusal (exit 3) before anything is written, never a full disk."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from spectral.errors import CouldNotVerify

if TYPE_CHECKING:
    from spectral.providers.base import Backup

GIB = 1 << 30
# kept free for whatever else lives on the filesystem (the source's WAL and tables growing while
# the copy is made): 2% of it, at least 2 GiB. On top of the blocks ext4 already keeps for root
# (statvfs's f_bavail leaves them out), so not 5% again.
RESERVE_FRACTION = 0.02
RESERVE_MIN = 2 * GIB


def free_bytes(folder: Path) -> tuple[int, int]:
    """(free bytes for an unprivileged writer, the filesystem's size) where `folder` is or
    would be created: its nearest existing parent's filesystem."""
    here = folder
    while not here.exists() and here != here.parent:
        here = here.parent
    st = os.statvfs(here)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def ensure_room(folder: Path, needed: int, what: str) -> None:
    """CouldNotVerify unless `needed` bytes fit under `folder` with the reserve left free."""
    free, size = free_bytes(folder)
    reserve = max(RESERVE_MIN, int(size * RESERVE_FRACTION))
    if needed + reserve <= free:
        return
    raise CouldNotVerify(
        f"{what} needs about {_gib(needed)} under {folder}, where {_gib(free)} is free and "
        f"{_gib(reserve)} stays free for the rest of the disk (nothing was written)",
        hint="free space on that filesystem, or run the restore where there is room")


def ensure_copy_fits(folder: Path, chain: Iterable[Backup], what: str) -> None:
    """A restored copy of `chain` under `folder`: its files and a checkpoint's worth of WAL
    (max_wal_size's default) beside them. A repository's compressed sizes make this a low
    estimate, never a high one."""
    ensure_room(folder, sum(b.size_bytes for b in chain) + GIB, what)


def _gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB"
