"""Recovery settings for a restored data directory and reading what recovery actually did.

Settings: https://www.postgresql.org/docs/current/runtime-config-wal.html#RUNTIME-CONFIG-WAL-RECOVERY-TARGET
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

from spectral.errors import UsageError
from spectral.pg.binaries import PgBinaries
from spectral.providers.capabilities import RecoveryReached
from spectral.recovery_target import RecoveryTarget, TargetKind, TimeTarget


def command_word(text: str | Path) -> str:
    """One word of an archive_command or restore_command: quoted for the shell (a space or a
    quote in a path stays in it) and with `%` doubled, because PostgreSQL replaces %f, %p and
    %% in the command before the shell sees it."""
    return shlex.quote(str(text)).replace("%", "%%")


def whole_segment(folder_word: str, seg_size: int) -> str:
    """A shell test that the file %f in the folder is a whole segment of the lineage's size
    (`seg_size`, discovered: walsize.py), or a history file."""
    return f'case %f in *.history) ;; *) test "$(stat -c %%s {folder_word}%f)" = {seg_size} ;; esac'


def restore_command(archive: Path, stream: Path, seg_size: int) -> str:
    """Fetch a segment from the archive, else from pg_receivewal's directory (what PostgreSQL
    puts for %f and %p is a WAL file name and pg_wal/..., neither needing quotes)."""
    a, s = command_word(f"{archive}/"), command_word(f"{stream}/")
    # A segment of the wrong size (truncated) is not handed over: PostgreSQL stops with FATAL
    # on one ("archive file ... has wrong size") even for a target before it, as it reads WAL
    # ahead; not handing it over ends the WAL there, which the window names as a gap.
    whole = whole_segment(a, seg_size)
    return f'test -f {a}%f && {{ {whole}; }} && cp {a}%f "%p" || cp {s}%f "%p"'


def recovery_settings(target: RecoveryTarget, command: str, *,
                      pause: bool) -> dict[str, str]:
    """The postgresql.conf settings of a point-in-time restore (pure; unit-tested):
    `command` is the restore_command."""
    conf = {
        "restore_command": command,
        "recovery_target_timeline": "latest",
        "recovery_target_action": "pause" if pause else "promote",
    }
    if not pause:
        # Under hot standby, replaying a shutdown checkpoint written while a transaction was
        # prepared reads that transaction's state back from pg_wal, where a segment that came
        # through restore_command never is: FATAL "requested WAL segment ... has already been
        # removed" (after an in-place restore to between PREPARE and COMMIT PREPARED). Nothing
        # connects before promotion but a paused restore, which keeps hot standby to be read.
        conf["hot_standby"] = "off"
    if target.kind is TargetKind.LATEST:
        if pause:   # no target to pause at: recovery would promote and the wait never end
            raise UsageError("--pause needs a recovery target to stop at; --latest promotes "
                             "at the end of the WAL")
        conf.pop("recovery_target_action")
        return conf
    key = {TargetKind.TIME: "recovery_target_time", TargetKind.XID: "recovery_target_xid",
           TargetKind.LSN: "recovery_target_lsn", TargetKind.NAME: "recovery_target_name"}
    assert target.value is not None
    conf[key[target.kind]] = target.value
    if isinstance(target, TimeTarget):   # normalised: PostgreSQL rejects ISO 8601's "T...Z"
        conf[key[target.kind]] = pg_time(target.at)
    if target.kind is not TargetKind.NAME:
        conf["recovery_target_inclusive"] = "off" if target.exclusive else "on"
    return conf


STOP_RE = re.compile(r"recovery stopping (?P<how>before|after|at) (?P<what>.*)$")
REDO_DONE_RE = re.compile(r"redo done at (?P<lsn>[0-9A-F]+/[0-9A-F]+)")
LAST_TX_RE = re.compile(r"last completed transaction was at log time (?P<time>.+)$")
PAUSED_RE = re.compile(r"recovery has paused")


def read_outcome(log_text: str) -> RecoveryReached:
    """Where recovery stopped, as the server's log says."""
    stopped = redo = last = None
    paused = False
    for line in log_text.splitlines():
        if m := STOP_RE.search(line):
            stopped = f"{m.group('how')} {m.group('what').strip()}"
        elif m := REDO_DONE_RE.search(line):
            redo = m.group("lsn")
        elif m := LAST_TX_RE.search(line):
            last = m.group("time").strip()
        elif PAUSED_RE.search(line):
            paused = True
    return RecoveryReached(stopped, redo, last, paused)


# FATAL lines of a connection turned away while the server starts, recovers or stops: spectral's
# own polls, never why recovery ended (a PANIC of the startup process, a disk full, comes first)
TURNED_AWAY = ("the database system is starting up", "the database system is in recovery mode",
               "the database system is shutting down", "the database system is not yet accepting",
               "the database system is not accepting connections")


def recovery_failure(log_text: str) -> str | None:
    """PostgreSQL's own words for why a recovery ended: the last PANIC line, else the last
    FATAL one that is not a connection turned away, preceded by the line that names the bad
    setting when the FATAL only says the configuration has errors."""
    lines = [line for line in log_text.splitlines()
             if not any(t in line for t in TURNED_AWAY)]
    panics = [line for line in lines if "PANIC:" in line]
    if panics:
        return panics[-1].split("PANIC:", 1)[-1].strip()
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if "FATAL" in line or "PANIC" in line:
            fatal = line.split("FATAL:", 1)[-1].split("PANIC:", 1)[-1].strip()
            if "contains errors" in fatal:
                causes = [c.split(":  ", 1)[-1].strip() for c in lines[max(0, i - 20):i]
                          if "invalid value for parameter" in c or "syntax error" in c]
                if causes:
                    return f"{causes[-1]} ({fatal})"
            return fatal
    return None


def pg_time(value: datetime) -> str:
    """A time in the one form every PostgreSQL release accepts for recovery_target_time."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def throwaway_settings(bins: PgBinaries) -> dict[str, str]:
    """A throwaway instance takes no incremental backups: no WAL summarizer (PostgreSQL 17+),
    which would chase the source's old timelines and hold up the instance's shutdown by ten
    seconds."""
    return {"summarize_wal": "off"} if bins.major >= 17 else {}
