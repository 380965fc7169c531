"""The live server of an attached environment, read and never changed: where its WAL is
(`position`), and a bounded wait until the team's archive holds a point (`wait_archived`).

A drill reads its snapshot on the live server and restores the copy to the snapshot's LSN, so
the archive must hold the segment with that LSN. A segment is archived once it is full or
`archive_timeout` passes; spectral switches the segment itself only when the role it connects
as may (`pg_switch_wal()` is superuser-only unless granted), and otherwise waits, with a bound
taken from `archive_timeout`, saying what it waits for."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from spectral.errors import ConnectError, CouldNotVerify, SpectralError, UsageError
from spectral.pg.conn import connect
from spectral.providers.base import RecoverableWindow, Report
from spectral.providers.local import walheader, walsize
from spectral.providers.local import window as window_mod
from spectral.providers.local.repo import Repository
from spectral.providers.local.wal import format_lsn, parse_lsn, parse_segment
from spectral.recovery_target import TimeTarget
from spectral.timefmt import exact

NO_TIMEOUT_WAIT = 120.0     # seconds to wait when the server sets no archive_timeout
SWITCHED_WAIT = 120.0       # after a switch: the archive_command's own time
REPORT_EVERY = 15.0

POSITION_SQL = """
select pg_is_in_recovery(),
       (case when pg_is_in_recovery() then pg_last_wal_replay_lsn()
             else pg_current_wal_lsn() end)::text,
       (select setting::int from pg_settings where name = 'archive_timeout'),
       has_function_privilege('pg_switch_wal()', 'execute'),
       (select setting::bigint from pg_settings where name = 'wal_segment_size')
"""


@dataclass(frozen=True)
class LivePosition:
    replica: bool
    lsn: int
    archive_timeout: int          # seconds; 0: off
    may_switch: bool
    seg_size: int                 # its WAL segment size (bytes)


def position(dsn: str) -> LivePosition:
    with connect(dsn) as conn:
        row = conn.execute(POSITION_SQL).fetchone()
    assert row is not None
    return LivePosition(bool(row[0]), parse_lsn(str(row[1])), int(row[2] or 0), bool(row[3]),
                        walsize.from_setting(row[4], "the live server"))


def unarchived_bytes(lsn: int, last_archived: str, seg_size: int) -> int | None:
    """WAL the live server wrote after the end of the last segment its archiver reports
    (pg_stat_archiver.last_archived_wal, a segment or a backup/history file after it; pure):
    `seg_size`, the server's segment size, says which segment the name is."""
    seg = parse_segment(last_archived[:24], seg_size)
    if seg is None:
        return None
    return max(0, lsn - seg.end_lsn())


def archive_reaches(repo: Repository, lsn: int) -> bool:
    """Whether the archive's live lineage holds every record before `lsn`: the whole segment
    with its last byte. A quiet server after a switch stands at a segment's first byte; that
    segment is archived only once something writes, and holds nothing before `lsn`."""
    lin = window_mod.lineage_of(repo)
    segments = [s for s in lin.segments if not s.partial]
    return bool(segments) and segments[-1].segno >= lin.view.segno(lsn - 1)


def wait_archived(repo: Repository, forget: Callable[[], None], dsn: str, lsn: int,
                  report: Report | None) -> None:
    """Return once the archive holds every record before `lsn`; CouldNotVerify, naming the
    segment and what to set, when it does not within the bound."""
    def holds() -> bool:
        forget()
        return archive_reaches(repo, lsn)

    if holds():
        return
    live = position(dsn)
    if live.may_switch and not live.replica:
        with connect(dsn) as conn:
            conn.execute("select pg_switch_wal()")
        bound = SWITCHED_WAIT
    else:
        bound = 2.0 * live.archive_timeout + 60 if live.archive_timeout else NO_TIMEOUT_WAIT
    why = ("after a switch of the live server's WAL" if live.may_switch and not live.replica
           else f"archive_timeout is {live.archive_timeout}s" if live.archive_timeout
           else "a replica, which cannot switch WAL, and archive_timeout is off there"
           if live.replica else "archive_timeout is off and the role may not switch WAL")
    say = report or (lambda _msg: None)
    say(f"waiting for the team's archive to hold WAL up to {format_lsn(lsn)} (the segment "
        f"with it is archived when full; {why}): up to {bound:.0f}s")
    deadline = time.monotonic() + bound
    next_report = time.monotonic() + REPORT_EVERY
    while not holds():
        now = time.monotonic()
        if now >= deadline:
            # the advice is in the message: a drill records the message, not the hint
            raise CouldNotVerify(
                f"the team's archive does not hold WAL up to {format_lsn(lsn)} after "
                f"{bound:.0f}s ({why}): {advice(live, dsn)}")
        if now >= next_report:
            say(f"still waiting for WAL up to {format_lsn(lsn)} "
                f"({deadline - now:.0f}s left)")
            next_report = now + REPORT_EVERY
        time.sleep(1.0)


def advice(live: LivePosition, dsn: str) -> str:
    """What to set or check when the archive did not catch up within the bound."""
    if live.replica:
        return "set archive_timeout on the primary (e.g. '60s'), so the segment is archived"
    if not live.may_switch:
        return ("set archive_timeout on the live server (e.g. '60s'), or GRANT EXECUTE ON "
                "FUNCTION pg_switch_wal() TO the role spectral connects as")
    with connect(dsn) as conn:
        row = conn.execute("select failed_count, last_failed_wal, last_archived_wal "
                           "from pg_stat_archiver").fetchone()
    assert row is not None
    return (f"the segment was switched and not archived: check the team's archive_command "
            f"(pg_stat_archiver: {row[0]} failure(s), last failed {row[1] or 'none'}, last "
            f"archived {row[2] or 'none'})")


def past_archive(target: TimeTarget, window: RecoverableWindow) -> bool:
    """Whether a time target may lie in WAL the live server wrote after the archive's end: no
    transaction in the archive ends after it, so recovery would run to the archive's end and
    stop short of commits made before the target that are not archived yet (pure)."""
    return window.latest_time is None or target.at >= window.latest_time


def unknown_after_archive(target: TimeTarget, window: RecoverableWindow,
                          why: SpectralError) -> CouldNotVerify:
    """A time after the archive's last transaction while the live server cannot be asked how
    far its WAL goes: whether it committed before the target is unknown."""
    last = exact(window.latest_time) if window.latest_time else "none"
    return CouldNotVerify(
        f"--target-time {exact(target.at)} is after the last transaction in the team's archive "
        f"({last}) and the live server cannot be reached to tell whether it committed more "
        f"before then ({why})",
        hint=f"--latest restores the end of the team's archive (LSN {window.latest_lsn})")


def check_timeline(dsn: str, archived: int) -> None:
    """A restore follows the newest timeline the archive holds a history file or WAL of (as
    PostgreSQL's recovery_target_timeline = 'latest' does). When the live primary is on an
    older one, that timeline is not the live server's (a promoted copy or a former standby
    archived into the same place): every backup taken on the live timeline after its branch
    looks abandoned and a drill waits for WAL on the wrong timeline. Named, exit 3; nothing is
    checked while the live server cannot be reached (the archive is all there is then)."""
    try:
        with connect(dsn) as conn:
            row = conn.execute("select pg_is_in_recovery(), "
                               "(pg_control_checkpoint()).timeline_id").fetchone()
    except ConnectError:
        return
    if row is None or row[0] or row[1] is None or int(row[1]) >= archived:
        return
    history = f"{archived:08X}.history"
    raise CouldNotVerify(
        f"the team's archive holds timeline {archived} ({history} or its WAL) and the live "
        f"server is on timeline {int(row[1])}: a restore would follow timeline {archived}, "
        f"which the live server is not on (a promoted copy or a former standby archiving into "
        f"the same place?)",
        hint=f"move {history} and timeline {archived}'s WAL out of the team's archive (spectral "
             f"never writes there); PostgreSQL's own restores of it follow that timeline too")


def archive_system(repo: Repository) -> int | None:
    """The database system the archive's WAL is of: the system identifier in the first page
    header of its newest segment (fetched when the repository fetches on read); None when no
    segment can be read."""
    lin = window_mod.lineage_of(repo)
    for seg in reversed(lin.segments[-3:]):
        try:
            folder = lin.view.where[seg]
        except (KeyError, SpectralError):
            continue
        header = walheader.read(Path(folder) / (seg.name + (".partial" if seg.partial else "")))
        if header is not None:
            return header.sysid
    return None


def check_same_system(repo: Repository, live_sysid: str | None, what: str) -> None:
    """A drill compares the live server with a copy of the archive: both must be of one
    database system. A DSN and an archive setting that point at two clusters (production's
    server, staging's archive) otherwise compare unrelated data: a FAIL that blames the
    backups, or a PASS when the data happens to agree."""
    archived = archive_system(repo)
    if live_sysid is None or archived is None or str(archived) == str(live_sysid):
        return
    raise UsageError(f"the team's archive ({what}) holds the WAL of database system "
                     f"{archived}, and the live server is database system {live_sysid}: the "
                     f"dsn and the repository settings point at two different clusters",
                     hint="point dsn at the server whose backups these are, or the repository "
                          "settings at that server's backups")
