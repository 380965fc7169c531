"""The lifecycle test's model and profiles: what every commit left in the table, the tally of
what ran, and the fixed script that walks every operation."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hypothesis import strategies as st

from spectral.recovery_target import TargetKind

Rows = dict[int, int]
T = "platform.m"
PROFILE = os.environ.get("SPECTRAL_LIFECYCLE", "ci")
TALLY: dict[str, int] = {}


@dataclass(frozen=True)
class Commit:
    xid: int
    lsn: str                   # the WAL position right after the commit
    time: datetime
    rows: Rows                 # the table after this commit
    deleted: int = 0           # rows this transaction deleted
    point: str | None = None   # a restore point created right after it
    kind: str = "insert"       # insert | update | delete | salvage


@dataclass
class Model:
    history: list[Commit] = field(default_factory=list)    # the live lineage, oldest first
    before_restore: list[Commit] | None = None              # what an undo puts back
    faults: int = 0
    first_reachable: int | None = None    # index of the first commit after a usable backup
    wal_from: int = 0                     # index of the first commit whose WAL is archived
    next_id: int = 1

    @property
    def rows(self) -> Rows:
        return dict(self.history[-1].rows) if self.history else {}


PICK = st.integers(0, 10_000)   # which of the candidates a rule takes (modulo their number)


def _pick(items: list[Any], pick: int) -> Any:
    return items[pick % len(items)]


# a stream's exit on SIGTERM: pg_receivewal stopped (up to 20 s), and the server when the stream
# was the last command using a server a command had started (a fast shutdown's checkpoint, up to
# 90 s under load): a PostgreSQL 18 long run saw more than 60 s once at teardown (session 10)
STREAM_EXIT = 180


def _settle(probe: Any, seconds: float = 20.0) -> Any:
    """Poll `probe` until it returns something empty or time is up; its last answer."""
    deadline = time.monotonic() + seconds
    while (found := probe()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def count(name: str) -> None:
    TALLY[name] = TALLY.get(name, 0) + 1



def _minutes() -> float:
    return float(PROFILE) if PROFILE.replace(".", "", 1).isdigit() else 30.0


def _summary() -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(TALLY.items()))


# A fixed sequence through every operation, in CI beside the random ones (Hypothesis's swarm
# testing enables a random subset of rules per sequence: a few sequences alone may miss some).
SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("write", {"kind": "insert", "n": 30, "large": False}),
    ("backup", {"incremental": False}),
    ("write", {"kind": "update", "n": 20, "large": True}),      # crosses WAL segments
    ("restore_point", {}),
    ("write", {"kind": "delete", "n": 5, "large": False}),
    ("idle", {"segments": 2}),
    ("restore", {"pick": 0, "kind": TargetKind.TIME, "exclusive": False}),
    ("restore", {"pick": 1, "kind": TargetKind.XID, "exclusive": True}),
    ("restore", {"pick": 2, "kind": TargetKind.LSN, "exclusive": False}),
    ("restore", {"pick": 0, "kind": TargetKind.NAME, "exclusive": False}),
    ("restore", {"pick": 0, "kind": TargetKind.LATEST, "exclusive": False}),
    ("restore", {"pick": -1, "kind": TargetKind.TIME, "exclusive": True}),   # the last commit
    ("two_phase", {"commit": True, "delete": True}),
    ("two_phase", {"commit": False, "delete": False}),
    ("two_phase", {"commit": True, "delete": False}),
    # prepared before T, committed after it; then the prepared transaction itself
    ("restore", {"pick": -2, "kind": TargetKind.TIME, "exclusive": False}),
    ("restore", {"pick": -1, "kind": TargetKind.XID, "exclusive": False}),
    ("find_damage", {}),
    ("crash_source", {}),
    ("stream_start", {}),
    ("restart_under_stream", {}),
    ("write", {"kind": "insert", "n": 10, "large": False}),
    ("backup", {"incremental": True}),
    ("restore_in_place", {"pick": 1}),
    ("write", {"kind": "insert", "n": 3, "large": False}),
    # kill -9 of the command line at a step boundary; the next command finishes it
    ("crash_undo", {"step": "undo:recovering", "then": "local up"}),
    ("undo", {}),
    ("crash_in_place", {"pick": 2, "step": "restore:committed", "then": "local up"}),
    ("write", {"kind": "delete", "n": 2, "large": False}),
    ("salvage", {"pick": 0}),
    ("drill", {"together": 2}),
    ("playbook_self_inflicted", {}),
    ("undo", {}),
    ("restore", {"pick": 4, "kind": TargetKind.TIME, "exclusive": False}),
    ("stream_stop", {"kill": True}),
    ("kill_during_backup", {}),
    ("kill_during_restore", {"delay": 0.8}),
    ("kill_during_drill", {"delay": 1.5}),
    ("backup", {"incremental": False}),
    ("crash_expire", {"then": "dr expire --keep 1 --yes"}),
    ("restore", {"pick": 0, "kind": TargetKind.XID, "exclusive": False}),
    ("ddl_during_drill", {"delay": 0.5}),
    ("damage_archive", {"pick": 0, "how": "delete"}),
    ("corrupt_backup", {"pick": 0}),
    ("restore", {"pick": 3, "kind": TargetKind.TIME, "exclusive": False}),
    ("drill", {"together": 1}),
    ("write", {"kind": "insert", "n": 5, "large": True}),
    ("damage_wal_record", {"pick": -1, "offset": 8192 * 2 + 300, "how": "bytes"}),
    ("find_damage", {}),   # a damaged segment is named (exit 3), never read past
    ("restore", {"pick": -1, "kind": TargetKind.LATEST, "exclusive": False}),
    ("lose_history_file", {}),
    ("restore", {"pick": -2, "kind": TargetKind.XID, "exclusive": False}),
]
INVARIANTS = ("live_database_matches_the_model", "undo_due_when_the_model_says",
              "nothing_else_running", "ledger_verifies")
