"""Append-only and tamper-evident: every entry carries the SHA-256 of the previous one and of
itself; a head file records the last sequence number and hash, so removing the newest entries is
detected too. Writers hold an exclusive lock; every append is flushed and fsynced. Everything
written goes through the redaction function.

What it does not do: an attacker who can rewrite the whole file and the head can forge a
consistent history. Anchoring the head elsewhere (a CI log, a ticket) closes that; the runbook
render prints the head for that reason."""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from spectral.durable import append_durable, file_lock, write_atomic
from spectral.redact import redact_obj

FORMAT_VERSION = 1
GENESIS = "0" * 64


class EntryKind(StrEnum):
    DRILL = "drill"
    TABLETOP = "tabletop"
    INCIDENT = "incident"
    ACTIVATION = "activation"
    SNAPSHOT = "snapshot"
    BACKUP = "backup"
    RESTORE = "restore"


@dataclass(frozen=True)
class Entry:
    seq: int
    at: datetime
    kind: EntryKind
    environment: str
    data: dict[str, Any]
    prev: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {"version": FORMAT_VERSION, "seq": self.seq, "at": self.at.isoformat(),
                "kind": self.kind.value, "environment": self.environment, "data": self.data,
                "prev": self.prev, "hash": self.hash}


@dataclass(frozen=True)
class LedgerProblem:
    line: int
    problem: str


def _digest(body: dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _body(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "hash"}


class Ledger:
    def __init__(self, evidence_dir: Path) -> None:
        self.dir = evidence_dir
        self.path = evidence_dir / "ledger.jsonl"
        self.head = evidence_dir / "ledger.head"

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.dir / "ledger.lock")

    def _last(self) -> tuple[int, str]:
        if not self.path.exists():
            return 0, GENESIS
        last = None
        with open(self.path, "rb") as f:
            for line in f:
                if line.strip():
                    last = line
        if last is None:
            return 0, GENESIS
        d = json.loads(last)
        return int(d["seq"]), str(d["hash"])

    def append(self, kind: EntryKind, environment: str, data: dict[str, Any],
               at: datetime | None = None) -> Entry:
        """Add one entry: locked, chained to the last one, fsynced, redacted."""
        with self._lock():
            seq, prev = self._last()
            body = {"version": FORMAT_VERSION, "seq": seq + 1,
                    "at": (at or datetime.now(UTC)).isoformat(timespec="milliseconds"),
                    "kind": kind.value, "environment": environment,
                    "data": redact_obj(data), "prev": prev}
            digest = _digest(body)
            line = json.dumps({**body, "hash": digest}, sort_keys=True, ensure_ascii=False)
            append_durable(self.path, line + "\n")
            write_atomic(self.head, json.dumps({"seq": seq + 1, "hash": digest}) + "\n")
        return Entry(seq + 1, datetime.fromisoformat(body["at"]), kind, environment,
                     body["data"], prev, digest)

    def entries(self) -> list[Entry]:
        out: list[Entry] = []
        if not self.path.exists():
            return out
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            d = json.loads(line)
            out.append(Entry(int(d["seq"]), datetime.fromisoformat(d["at"]),
                             EntryKind(d["kind"]), d["environment"], d["data"], d["prev"],
                             d["hash"]))
        return out

    def verify(self) -> list[LedgerProblem]:
        """Every way the file can differ from what was appended: an edited entry (its hash),
        a removed or reordered one (the chain and the sequence), removed newest entries (the
        head), a line that is not JSON."""
        problems: list[LedgerProblem] = []
        prev, seq = GENESIS, 0
        lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except ValueError:
                problems.append(LedgerProblem(number, "not valid JSON (damaged or edited)"))
                continue
            if _digest(_body(d)) != d.get("hash"):
                problems.append(LedgerProblem(number, f"entry {d.get('seq')} was edited: its "
                                                      f"content does not match its hash"))
            if d.get("prev") != prev:
                problems.append(LedgerProblem(number, f"entry {d.get('seq')} does not follow the "
                                                      f"entry before it (one was removed, "
                                                      f"inserted or reordered)"))
            if d.get("seq") != seq + 1:
                problems.append(LedgerProblem(number, f"sequence jumps from {seq} to "
                                                      f"{d.get('seq')}"))
            prev, seq = str(d.get("hash")), int(d.get("seq", seq + 1))
        if self.head.exists():
            head = json.loads(self.head.read_text())
            if head.get("seq") != seq or head.get("hash") != prev:
                problems.append(LedgerProblem(len(lines), f"the ledger ends at entry {seq}, but "
                                                          f"its head records entry "
                                                          f"{head.get('seq')}: entries were "
                                                          f"removed from the end"))
        elif seq:
            problems.append(LedgerProblem(0, "the head file is missing"))
        return problems

    def head_hash(self) -> str:
        return self._last()[1]
