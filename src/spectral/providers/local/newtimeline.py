"""The id of the timeline a promotion begins, checked before the tool promotes a database
(an in-place restore, an undo, either one's roll-back).

PostgreSQL numbers a new timeline one above the newest history file it finds counting up from
the timeline it recovered (`findNewestTimeLine`: it probes <id>.history through restore_command,
then in pg_wal, and stops at the first one missing). When the history file of a timeline is
lost from the archive while the archive still holds that timeline's WAL or backups, the count
stops below it and the new timeline gets the same id: two histories under one id. Every later
restore then takes one for the other (found by the long lifecycle profile, PostgreSQL 18: a
`--latest` restore of a crashed source replayed the abandoned history's segments and backup,
exit 0, and lost the live history's last commits; recovery cannot tell either). So the tool
refuses to promote, naming the lost file, and promotes once it is back."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from spectral.errors import CouldNotVerify, SpectralError
from spectral.pg.cluster import Cluster
from spectral.providers.base import Backup
from spectral.providers.local.repo import Repository
from spectral.providers.local.wal import parse_lsn, read_history

HISTORY_RE = re.compile(r"^([0-9A-F]{8})\.history$")


def next_timeline(start: int, histories: set[int]) -> int:
    """The id PostgreSQL gives the timeline it begins after recovering timeline `start`, with
    the history files of `histories` at hand (pure)."""
    newest = start
    while newest + 1 in histories:
        newest += 1
    return newest + 1


def histories_in(folder: Path) -> set[int]:
    """Timelines with a history file in `folder` (a server's pg_wal)."""
    if not folder.is_dir():
        return set()
    return {int(m.group(1), 16) for p in folder.iterdir() if (m := HISTORY_RE.match(p.name))}


def on_disk(cluster: Cluster) -> list[tuple[int, Path | None]]:
    """The timeline of a data directory's last checkpoint and its pg_wal; nothing when its
    control file cannot be read (no promotion of it can run either)."""
    try:
        return [(cluster.checkpoint_timeline(), cluster.data_dir / "pg_wal")]
    except SpectralError:
        return []


def used_timelines(repo: Repository) -> dict[int, str]:
    """Every timeline id the repository knows of -> what of it it holds."""
    used: dict[int, str] = {}
    for seg in repo.wal_files():
        used.setdefault(seg.timeline, f"WAL ({seg.name})")
    for b in repo.read():
        used.setdefault(b.timeline, f"backup {b.id}")
    for tli in repo.history_timelines():
        used.setdefault(tli, "a history file")
        for switch in read_history(repo.archive, tli):
            used.setdefault(switch.timeline, f"the ancestry of timeline {tli}")
    return used


def check_fresh(repo: Repository, starts: Iterable[tuple[int, Path | None]]) -> None:
    """Refuse (CouldNotVerify) when a promotion after recovering any of `starts` (a timeline,
    and the pg_wal of the data directory on it, if there is one yet) would begin a timeline
    whose id the repository already uses."""
    used = used_timelines(repo)
    archived = set(repo.history_timelines()) | histories_in(repo.stream)   # restore_command's
    for start, pg_wal in starts:
        tli = next_timeline(start, archived | (histories_in(pg_wal) if pg_wal else set()))
        if tli in used:
            name = f"{tli:08X}.history"
            raise CouldNotVerify(
                f"the history file of timeline {tli} ({name}) is missing from the archive, "
                f"which still holds {used[tli]} of that timeline: PostgreSQL would give the "
                f"new timeline this command begins the same id {tli}, and every later "
                f"restore would mix the two histories",
                hint=f"put {name} back into the archive (a server that ran on timeline {tli} "
                     f"has it in its pg_wal), then run the command again")


def _switches(text: str) -> list[tuple[int, int]]:
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            out.append((int(parts[0]), parse_lsn(parts[1])))
    return out


def other_history(repo: Repository, backup: Backup) -> bool:
    """Whether `backup` was taken on another history than the one the archive holds under its
    timeline's id (its own copy of the history file says another branch point): an id reused
    after a lost history file (made before promotions were checked, or by a promotion outside
    spectral). Recovery from it follows that other history, never the archive's."""
    own = repo.backup_history(backup)
    if own is None:
        return False
    try:
        archived = (repo.archive / f"{backup.timeline:08X}.history").read_text()
    except OSError:    # lost: nothing to tell them apart by (the window names the loss)
        return False
    return _switches(own) != _switches(archived)


def reused_note(repo: Repository) -> str:
    """Why no backup is usable when some lie on another history under a reused id; or ''."""
    others = [b for b in repo.read() if other_history(repo, b)]
    if not others:
        return ""
    tlis = sorted({b.timeline for b in others})
    return (f"; {len(others)} backup(s) ({', '.join(b.id for b in others)}) were taken on "
            f"another history under the same timeline id ({', '.join(map(str, tlis))}): the "
            f"id was reused after its history file was lost, and recovery from them would "
            f"follow that history, not the live one")
