"""Ledger entries a backend owes. Backends never write the ledger; the features do. What a
backend did that must be on record even when its process dies right after (an in-place restore,
its undo, an interrupted one that the next command put right) it leaves here first, one file
per entry, written and fsynced before the operation is reported done. The environment appends
them to its ledger the next time it opens it, and features call `Environment.record_owed`
right after such an operation.

An entry is owed under a key: owing the same key again (a process killed between owing and
noting that it owed) replaces the file, and an entry the ledger already holds (the same kind and
payload) is not appended twice (a process killed between appending and removing the file)."""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spectral.durable import fsync_dir, write_atomic
from spectral.errors import CouldNotVerify
from spectral.ledger.store import EntryKind, Ledger, Payload
from spectral.redact import redact_obj

FOLDER = "ledger-outbox"
RECENT = 500          # entries looked at for a key already appended (owed entries are recent)


@dataclass(frozen=True)
class Owed:
    path: Path
    key: str
    kind: EntryKind
    data: dict[str, Any]


class Outbox:
    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / FOLDER

    def owe(self, payload: Payload, key: str | None = None) -> str:
        key = _safe(key) if key else (f"{datetime.now(UTC):%Y%m%dT%H%M%S%f}-"
                                      f"{secrets.token_hex(4)}")
        write_atomic(self.dir / f"{key}.json",
                     json.dumps({"key": key, "kind": payload.KIND.value,
                                 "owed_at": time.time_ns(), "data": payload.to_json()}) + "\n",
                     0o600)
        fsync_dir(self.dir)
        return key

    def check(self) -> None:
        """Before an operation that will owe an entry: the outbox can take it."""
        if self.dir.exists() and not self.dir.is_dir():
            raise CouldNotVerify(f"{self.dir} is not a directory: what this operation owes "
                                 f"the ledger could not be kept; nothing was changed",
                                 hint="move the file away")

    def owed(self) -> list[Owed]:
        """What is owed, in the order it was owed."""
        out = []
        for path in self.dir.glob("*.json") if self.dir.is_dir() else []:
            try:
                d = json.loads(path.read_text())
                out.append((int(d.get("owed_at", 0)), Owed(path, str(d["key"]),
                                                           EntryKind(d["kind"]),
                                                           dict(d["data"]))))
            except (OSError, ValueError, KeyError, TypeError):
                continue     # written atomically: only a damaged file is (`unreadable`)
        return [owed for _, owed in sorted(out, key=lambda o: (o[0], o[1].key))]

    def unreadable(self) -> list[Path]:
        """Owed entries that cannot be read (damaged by hand or by the disk): never dropped in
        silence, every command that records them says so."""
        readable = {o.path for o in self.owed()}
        return sorted(p for p in self.dir.glob("*.json") if p not in readable) \
            if self.dir.is_dir() else []

    def settle(self, owed: Owed) -> None:
        owed.path.unlink(missing_ok=True)
        fsync_dir(self.dir)


def deliver(outbox: Outbox, ledger: Ledger, environment: str) -> int:
    """Append every owed entry the ledger does not hold yet, oldest first; how many."""
    owed = outbox.owed()
    if not owed:
        return 0
    held = {_same(e.kind, e.data) for e in ledger.entries()[-RECENT:]}
    appended = 0
    for item in owed:
        if _same(item.kind, redact_obj(item.data)) not in held:
            ledger.append(item.kind, environment, item.data)
            appended += 1
        outbox.settle(item)
    return appended


def _same(kind: EntryKind, data: Any) -> str:
    """An entry's identity for "already appended": its kind and payload (each payload names
    the data directories of its one operation, so two operations never share one)."""
    return f"{kind.value} {json.dumps(data, sort_keys=True, default=str)}"


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", key)[:120].lstrip(".") or "owed"
