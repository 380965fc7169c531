"""`pgbackrest verify`: every file of every backup and of the WAL archive checked against the
checksum pgBackRest recorded for it. Verify exits 0 even when it finds damage; the damage is in
its log lines (`invalid checksum '<file>'`, `file missing '<file>'`, ...) and its per-backup
status lines, which are read here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from spectral.providers.base import Backup
from spectral.providers.local.wal import is_segment_name

FILE_RE = re.compile(r"INFO: (?P<what>[a-z][a-z ]+?) '(?P<file>[^']+)'")
STATUS_RE = re.compile(r"backup: (?P<label>\S+), status: (?P<status>[a-z]+)")
ARCHIVE_ID_RE = re.compile(r"^\d+-\d+$")


@dataclass
class VerifyReport:
    bad_backup_files: dict[str, list[str]] = field(default_factory=dict)   # label -> files
    bad_wal: list[tuple[str, str]] = field(default_factory=list)           # (segment, problem)
    status: dict[str, str] = field(default_factory=dict)                   # label -> valid/...

    def backup_problems(self, label: str) -> list[str]:
        files = self.bad_backup_files.get(label, [])
        if files:
            return files
        status = self.status.get(label)
        return [f"status {status}"] if status not in (None, "valid") else []

    def refusal(self, chain: list[Backup], first_segment: str) -> str | None:
        """Why a restore from `chain` (full first) that replays WAL from `first_segment` on
        cannot be trusted, or None."""
        problems = []
        for b in chain:
            problems += [f"backup {b.id}: {p}" for p in self.backup_problems(b.id)]
        for name, what in self.bad_wal:
            # WAL order is the order of the names' log and segment parts, whatever the size
            if is_segment_name(name) and is_segment_name(first_segment) and \
                    name[8:24] >= first_segment[8:24]:
                problems.append(f"WAL {name}: {what}")
        return "; ".join(problems) if problems else None


def parse(text: str) -> VerifyReport:
    """Read verify's console output at log level info (pure; unit-tested on real output)."""
    out = VerifyReport()
    for line in text.splitlines():
        if m := STATUS_RE.search(line):
            out.status[m.group("label")] = m.group("status")
            continue
        m = FILE_RE.search(line)
        if m is None or "/" not in m.group("file"):
            continue
        what, path = m.group("what").strip(), m.group("file")
        head, rest = path.split("/", 1)
        if ARCHIVE_ID_RE.match(head):
            name = rest.rsplit("/", 1)[-1].split("-", 1)[0]
            out.bad_wal.append((name, what))
        else:
            out.bad_backup_files.setdefault(head, []).append(f"{what} {rest}")
    return out
