"""What a restored copy's server said during recovery, sorted into damage and the normal end of
the WAL (pure; unit-tested against logs of clean and damaged recoveries on PostgreSQL 15 and 18).

The log is read as spectral's servers write it: `log_line_prefix = '%m [%p] '` and English
messages (`lc_messages = 'C'`, throwaway_settings). A line is classified by its level first:
WARNING, ERROR, FATAL and PANIC are damage (a page that failed verification and was zeroed, a
file that could not be opened, invalid pages, ...), but for the connections refused while the
server starts. PostgreSQL 18 logs a page that fails verification at LOG level too ("page
verification failed, calculated checksum 11605 but expected 65535", then "invalid page in
block 2 of relation ...; zeroing out page" at LOG and at WARNING): those words are damage at
any level. At LOG level the WAL reader says where it
stopped reading: a zeroed tail ("invalid record length at 0/3000148: expected at least 24, got
0", "invalid magic number 0000", "unexpected pageaddr" of a recycled segment) is how every
recovery that reads to the end of the WAL ends; a record that is there but wrong (a bad CRC,
a length or resource manager that is not zero) is damage. Lines without the prefix (what
restore_command's `cp` prints for a segment the archive does not hold) are not PostgreSQL's."""

from __future__ import annotations

import re
from dataclasses import dataclass

LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ \[\d+\] "
                  r"(?P<level>[A-Z]+\d?):\s+(?P<message>.*)$")
DAMAGE_LEVELS = frozenset({"WARNING", "ERROR", "FATAL", "PANIC"})
READY = "database system is ready to accept connections"

# the WAL reader's complaints (xlogreader.c), at LOG level when they end recovery's reading
WAL_READ = re.compile(
    r"invalid record length|record length \d+ at .* too long|invalid resource manager ID|"
    r"incorrect resource manager data checksum|invalid magic number|invalid info bits|"
    r"unexpected pageaddr|record with incorrect prev-link|contrecord|"
    r"invalid record offset|out-of-sequence timeline ID|unexpected timeline ID|"
    r"could not read from (?:WAL|log) segment|invalid compressed image|"
    r"could not (?:restore|decompress) image|out-of-order block_id|"
    r"(?:BKPBLOCK|BKPIMAGE)_\w+ (?:set|not set)|invalid block_id")
# damage whatever its level (PostgreSQL 18 reports a page read by recovery at LOG as well)
PAGE_DAMAGE = re.compile(r"page verification failed|invalid page in block|zeroing out page|"
                         r"checksum verification failed|invalid checksum|"
                         r"could not (?:open|read|write|fsync) file|unexpected zero page|"
                         r"is corrupt|corrupted")
# ... and the forms a zeroed (never written) tail of the WAL produces
END_OF_WAL = re.compile(r"invalid record length at \S+: (?:wanted|expected at least) \d+, "
                        r"got 0$|invalid magic number 0000 |unexpected pageaddr |"
                        r"record with incorrect prev-link \S+ at ")
# What a clean restore logs at those levels that says nothing about its data: the connection
# attempts of whoever waits for the server (FATAL, refused while it recovers or stops), and the
# settings of a team's postgresql.conf that the copy overrides
BENIGN = re.compile(r"^(?:the database system is (?:starting up|not (?:yet )?accepting "
                    r"connections|in recovery mode|shutting down)|"
                    r"archive_mode enabled, yet archiv|"
                    r"could not create (?:listen socket|Unix socket))")


@dataclass(frozen=True)
class RecoveryLog:
    """What recovery said: `damage` fails a drill, `notes` (where the WAL ended) are shown."""

    damage: tuple[str, ...]
    notes: tuple[str, ...]
    lines: int                     # PostgreSQL's own lines read

    @property
    def damaged(self) -> bool:
        return bool(self.damage)


def recovery_part(text: str) -> str:
    """The log up to the end of recovery: through the last "ready to accept connections" (what
    clients did later, a drill's own queries, is not recovery's), or all of it."""
    end = text.rfind(READY)
    if end < 0:
        return text
    stop = text.find("\n", end)
    return text if stop < 0 else text[:stop + 1]


def classify(text: str) -> RecoveryLog:
    damage: list[str] = []
    notes: list[str] = []
    seen: dict[str, int] = {}
    lines, last = 0, ""
    for raw in text.splitlines():
        m = LINE.match(raw)
        if m is None:
            continue
        lines += 1
        level, message = m.group("level"), m.group("message").strip()
        if level == "CONTEXT" and damage and damage[-1] == last:   # where it was: WAL redo at
            damage[-1] = last = f"{last} ({message[:160]})"
            continue
        last = ""
        if message in seen:                 # PostgreSQL 18 says it at LOG, then at WARNING
            i = seen[message]
            damage[i] = f"{level}:{damage[i].split(':', 1)[1]}" if level != "LOG" else damage[i]
        elif _is_damage(level, message):
            seen[message] = len(damage)
            damage.append(last := f"{level}: {message}")
        elif level == "LOG" and WAL_READ.search(message):
            (notes if END_OF_WAL.search(message) else damage).append(f"{level}: {message}")
    return RecoveryLog(tuple(damage), tuple(notes), lines)


def _is_damage(level: str, message: str) -> bool:
    if level in DAMAGE_LEVELS:
        return not BENIGN.match(message)
    return level == "LOG" and bool(PAGE_DAMAGE.search(message))
