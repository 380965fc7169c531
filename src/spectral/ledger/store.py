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
import os
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Protocol

from spectral.confirm import Confirmer
from spectral.durable import append_durable, file_lock, write_atomic
from spectral.errors import CouldNotVerify, RefusedError
from spectral.ledger.remote import Remote
from spectral.ledger.signing import Signer, signature_problems
from spectral.redact import redact_obj

FORMAT_VERSION = 1
GENESIS = "0" * 64
APPEND_ATTEMPTS = 60


class EntryKind(StrEnum):
    DRILL = "drill"
    TABLETOP = "tabletop"
    INCIDENT = "incident"
    ACTIVATION = "activation"
    SNAPSHOT = "snapshot"
    RESTORE = "restore"
    REPAIR = "repair"
    EXIT = "exit"               # a provider exit: the schemas moved elsewhere, and its proof
    KEY = "key"                 # a signing key introduced, added or revoked (signed itself)
    ALERT = "alert"             # a webhook told (or not) of a failure, overdue or recovery
    DRIFT_ACCEPTED = "drift_accepted"   # a load-bearing table's drop accepted on purpose


class Payload(Protocol):
    """What an entry of one kind holds, typed (ledger/payloads.py, or next to the feature
    that writes it); JSON only as it is written (`to_json`)."""
    KIND: ClassVar[EntryKind]

    def to_json(self) -> dict[str, Any]: ...


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
    """What the hash covers: everything but the hash and the signature (which signs it)."""
    return {k: v for k, v in d.items() if k not in ("hash", "sig")}


def _parse_entry(line: str) -> dict[str, Any] | str:
    """One ledger line as a dict with the fields every entry has, or what is wrong with it."""
    try:
        d = json.loads(line)
    except ValueError:
        return "not valid JSON (a torn write, or edited)"
    if not isinstance(d, dict):
        return f"not a ledger entry (a JSON {type(d).__name__})"
    missing = [k for k in ("seq", "at", "kind", "environment", "data", "prev", "hash")
               if k not in d]
    if missing:
        return f"not a ledger entry (no {', '.join(missing)})"
    if not isinstance(d["seq"], int) or isinstance(d["seq"], bool):
        return f"its seq {d['seq']!r} is not a whole number"
    try:
        datetime.fromisoformat(str(d["at"]))
        EntryKind(d["kind"])
    except ValueError:
        return "its time or kind is not valid"
    return d


def _entry(d: dict[str, Any]) -> Entry:
    return Entry(int(d["seq"]), datetime.fromisoformat(d["at"]), EntryKind(d["kind"]),
                 str(d["environment"]), d["data"], str(d["prev"]), str(d["hash"]))


class LedgerDamaged(CouldNotVerify):
    """The ledger cannot take an entry until a person looks at it."""


class Ledger:
    def __init__(self, evidence_dir: Path, remote: Remote | None = None,
                 signer: Signer | None = None, trusted: tuple[str, ...] = ()) -> None:
        self.dir = evidence_dir
        self.path = evidence_dir / "ledger.jsonl"
        self.head = evidence_dir / "ledger.head"
        self.remote, self.signer, self.trusted = remote, signer, trusted

    def describe(self) -> str:
        return self.remote.describe() if self.remote else f"file {self.path}"

    def sync(self) -> None:
        """Bring the working copy up to date with the shared store (no-op for a file)."""
        if self.remote is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            with self._lock():
                self.remote.pull(self.dir)

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        self._check_store()
        return file_lock(self.dir / "ledger.lock")

    def _check_store(self) -> None:
        """A store that exists but cannot hold a ledger is not an empty ledger."""
        if self.dir.exists() and not self.dir.is_dir():
            raise CouldNotVerify(f"the evidence store {self.dir} cannot be read: it is not a "
                                 f"folder")

    def _lines(self) -> list[str]:
        self._check_store()
        if not self.path.exists():
            return []
        try:
            return self.path.read_bytes().decode("utf-8", errors="replace").split("\n")
        except OSError as exc:
            raise CouldNotVerify(f"the ledger {self.path} cannot be read: "
                                 f"{exc.strerror or exc}") from None

    def _last(self) -> tuple[int, str]:
        """The newest entry's sequence number and hash; refuses a damaged last line (an append
        after it would chain onto nothing)."""
        lines = self._lines()
        numbered = [(n, ln) for n, ln in enumerate(lines, start=1) if ln.strip()]
        if not numbered:
            return 0, GENESIS
        number, last = numbered[-1]
        d = _parse_entry(last)
        if isinstance(d, str):
            raise LedgerDamaged(
                f"ledger {self.path} line {number} is {d}; no entry is added after it",
                hint="spectral dr log repair removes a torn last line (it asks first)")
        return int(d["seq"]), str(d["hash"])

    def check_appendable(self) -> None:
        """Raise before work starts whose result could not be recorded."""
        self._last()

    def append(self, kind: EntryKind, environment: str, data: dict[str, Any],
               at: datetime | None = None) -> Entry:
        """Add one entry: locked, chained to the last one, signed when a key is configured,
        fsynced, redacted; with a shared store, published, and appended again on the new head
        when another writer published first. The first signed append introduces its key."""
        self._check_store()
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.signer is not None and kind is not EntryKind.KEY and not self._introduced():
            from spectral.ledger.payloads import KeyRecord

            key = KeyRecord("signing key introduced", add=self.signer.public)
            self._append(key.KIND, environment, key.to_json(), at)
        return self._append(kind, environment, data, at)

    def record(self, environment: str, payload: Payload) -> Entry:
        """Add the entry of a typed payload (`append` with its kind and its JSON)."""
        return self.append(payload.KIND, environment, payload.to_json())

    def _introduced(self) -> bool:
        self.sync()
        return any(isinstance(d := _parse_entry(line), dict) and d.get("kind") == "key"
                   for line in self._lines() if line.strip())

    def _append(self, kind: EntryKind, environment: str, data: dict[str, Any],
                at: datetime | None) -> Entry:
        for attempt in range(APPEND_ATTEMPTS):
            with self._lock():
                if self.remote is not None:
                    self.remote.pull(self.dir)
                seq, prev = self._last()
                body = {"version": FORMAT_VERSION, "seq": seq + 1,
                        "at": (at or datetime.now(UTC)).isoformat(timespec="milliseconds"),
                        "kind": kind.value, "environment": environment,
                        "data": redact_obj(data), "prev": prev}
                digest = _digest(body)
                signed = {"sig": self.signer.sign(digest)} if self.signer else {}
                line = json.dumps({**body, "hash": digest, **signed}, sort_keys=True,
                                  ensure_ascii=False)
                append_durable(self.path, line + "\n")
                write_atomic(self.head, json.dumps({"seq": seq + 1, "hash": digest}) + "\n")
                if self.remote is None or self.remote.publish(self.dir, seq + 1, line):
                    return Entry(seq + 1, datetime.fromisoformat(body["at"]), kind,
                                 environment, body["data"], prev, digest)
            time.sleep(random.uniform(0.05, 0.2) * min(attempt + 1, 5))   # lost the race
        raise CouldNotVerify(f"could not append to {self.describe()}: other writers won "
                             f"{APPEND_ATTEMPTS} times in a row")

    def entries(self) -> list[Entry]:
        """Every readable entry, in order. A damaged line is left out here and reported by
        `verify` (readers such as `dr log` and `dr status` keep working)."""
        self.sync()
        out: list[Entry] = []
        for line in self._lines():
            if line.strip() and not isinstance(d := _parse_entry(line), str):
                out.append(_entry(d))
        return out

    def verify(self) -> list[LedgerProblem]:
        """Every way the file can differ from what was appended: an edited entry (its hash),
        a removed or reordered one (the chain and the sequence), removed newest entries (the
        head), a line that is not an entry."""
        self.sync()
        problems: list[LedgerProblem] = []
        prev, seq = GENESIS, 0
        last_prev: str | None = None      # what the newest entry chains on
        lines = self._lines()
        numbered = [(n, d) for n, line in enumerate(lines, start=1) if line.strip()
                    and not isinstance(d := _parse_entry(line), str)]
        # each signature problem names its entry and the line it is on
        problems += [LedgerProblem(numbered[i][0], p) for i, p in
                     signature_problems([d for _, d in numbered], self.trusted)]
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            d = _parse_entry(line)
            if isinstance(d, str):
                last = not any(rest.strip() for rest in lines[number:])
                problems.append(LedgerProblem(number, d + ("; it is the last line (a write cut "
                                                           "short?): spectral dr log repair"
                                                           if last else "")))
                continue
            if _digest(_body(d)) != d.get("hash"):
                problems.append(LedgerProblem(number, f"entry {d['seq']} was edited: its "
                                                      f"content does not match its hash"))
            if d.get("prev") != prev:
                problems.append(LedgerProblem(number, f"entry {d['seq']} does not follow the "
                                                      f"entry before it (one was removed, "
                                                      f"inserted or reordered)"))
            if d["seq"] != seq + 1:
                problems.append(LedgerProblem(number, f"sequence jumps from {seq} to "
                                                      f"{d['seq']}"))
            last_prev, prev, seq = d.get("prev"), str(d["hash"]), int(d["seq"])
        problems += self._check_head(seq, prev, len(lines), last_prev)
        return problems

    def _check_head(self, seq: int, prev: str, nlines: int,
                    last_prev: str | None = None) -> list[LedgerProblem]:
        if not self.head.exists():
            return [LedgerProblem(0, "the head file is missing")] if seq else []
        try:
            head = json.loads(self.head.read_text())
            head_seq, head_hash = head["seq"], head["hash"]
        except (OSError, ValueError, TypeError, KeyError):
            return [LedgerProblem(0, f"the head file {self.head} is damaged")]
        if head_seq == seq - 1 and head_hash == last_prev:
            return []     # an append killed between its entry and its head: the next heals it
        if head_seq != seq or head_hash != prev:
            return [LedgerProblem(nlines, f"the ledger ends at entry {seq}, but its head "
                                          f"records entry {head_seq}: entries were removed "
                                          f"from the end")]
        return []

    def torn_tail(self) -> tuple[int, int] | None:
        """The last line when it is not an entry (a write cut short): (line number, byte offset
        where it starts). None when the last line is a whole entry."""
        whole = self.path.read_bytes() if self.path.exists() else b""
        body = whole.rstrip(b"\n")
        if not body:
            return None
        start = body.rfind(b"\n") + 1
        if not isinstance(_parse_entry(body[start:].decode("utf-8", errors="replace")), str):
            return None
        return body[:start].count(b"\n") + 1, start

    def repair(self, confirmer: Confirmer, environment: str) -> Entry:
        """Remove a torn last line, and only that: everything before it must verify. The removal
        is itself recorded (line number, length and SHA-256 of what was removed)."""
        if self.remote is not None:
            raise RefusedError("a shared evidence store is never repaired in place; its "
                               "working copy is refreshed from the store on every read")
        with self._lock():
            torn = self.torn_tail()
            if torn is None:
                raise RefusedError("the ledger has no torn last line to remove; an edited, "
                                   "removed or reordered entry is never repaired",
                                   hint="spectral dr log verify")
            number, start = torn
            whole = self.path.read_bytes()
            raw, keep = whole[start:], whole[:start]
            before = self._problems_of(keep)
            if before:
                raise RefusedError(f"the ledger has other problems ({before[0]}); only a torn "
                                   f"last line is repaired", hint="spectral dr log verify")
            if not confirmer.confirm("Remove the torn last line of the ledger?",
                                     [f"{self.path} line {number}: {len(raw)} bytes, "
                                      f"not an entry: {raw[:60]!r}"]):
                raise RefusedError("not confirmed; the ledger was not changed")
            with open(self.path, "r+b") as f:
                f.truncate(len(keep))
                f.flush()
                os.fsync(f.fileno())
        from spectral.ledger.payloads import RepairRecord

        done = RepairRecord(f"removed torn line {number} ({len(raw)} bytes)", number, len(raw),
                            hashlib.sha256(raw).hexdigest())
        return self.record(environment, done)

    def _problems_of(self, data: bytes) -> list[str]:
        probe = Ledger(self.dir)
        probe.path = self.dir / ".ledger.repair-check"
        try:
            probe.path.write_bytes(data)
            return [f"line {p.line}: {p.problem}" for p in probe.verify()]
        finally:
            probe.path.unlink(missing_ok=True)

    def head_hash(self) -> str:
        try:
            return self._last()[1]
        except LedgerDamaged:
            return "damaged"
