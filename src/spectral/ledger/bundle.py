"""The evidence bundle: one file an auditor takes away and checks offline, with nothing but
spectral (or the format below and any SHA-256 and Ed25519 tool).

Format: line 1 is the body, canonical JSON (sorted keys, no spaces, UTF-8); line 2 is the trailer
`{"format":"spectral.evidence-bundle","sha256":<hex of line 1's bytes>,"signature":...}`.
The body holds the ledger slice (every entry as written, hash and signature included), the hash
the slice chains from, the public keys the ledger trusts, and the snapshots (fingerprints) the
slice's drills compared with; the drills' results are in their entries. Verifying recomputes
every entry's hash and the chain, checks the signatures against the bundle's keys (printed, so
they can be compared with the ones the auditor was given), and checks that both lines are
exactly the canonical form: one changed byte anywhere fails."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spectral.durable import write_atomic
from spectral.errors import CouldNotVerify, UsageError
from spectral.ledger.signing import check_signatures, key_id, valid
from spectral.ledger.store import GENESIS, Ledger, _body, _digest, _parse_entry

FORMAT = "spectral.evidence-bundle"
BODY_KEYS = {"format", "version", "environment", "exported_at", "since", "store",
             "chained_from", "entries", "key_entries_before", "public_keys", "snapshots",
             "signer"}
TRAILER_KEYS = {"format", "sha256", "signature"}


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Verified:
    environment: str
    entries: int
    first: int | None
    last: int | None
    keys: list[str]
    snapshots: int
    signed: bool


def export(ledger: Ledger, environment: str, out: Path, since: datetime | None = None) -> int:
    """Write the bundle; returns how many entries it holds."""
    problems = ledger.verify()
    if problems:
        raise CouldNotVerify(f"the ledger does not verify ({problems[0].problem}); a bundle "
                             f"of it would carry the damage", hint="spectral dr log verify")
    rows = [d for line in ledger.path.read_text().splitlines() if line.strip()
            and isinstance(d := _parse_entry(line), dict)] if ledger.path.exists() else []
    keep = [d for d in rows if since is None or datetime.fromisoformat(d["at"]) >= since]
    start = rows.index(keep[0]) if keep else len(rows)
    chained_from = rows[start - 1]["hash"] if start else GENESIS
    # key entries before the slice are needed to know which keys signed it
    keys_before = [d for d in rows[:start] if d.get("kind") == "key"]
    wanted = {str(d["data"].get("path", "")).rsplit("/", 1)[-1] for d in keep
              if d.get("kind") == "snapshot"}
    snapshots = {p.name: json.loads(p.read_text()) for p in
                 sorted((ledger.dir / "snapshots").glob("*.json")) if p.name in wanted}
    body = {"format": FORMAT, "version": 1, "environment": environment,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "since": since.isoformat() if since else None, "store": ledger.describe(),
            "chained_from": chained_from, "entries": keep, "key_entries_before": keys_before,
            "public_keys": list(ledger.trusted), "snapshots": snapshots,
            "signer": ledger.signer.public if ledger.signer else None}
    text = canonical(body)
    digest = hashlib.sha256(text.encode()).hexdigest()
    trailer = {"format": FORMAT, "sha256": digest,
               "signature": ledger.signer.sign(digest) if ledger.signer else None}
    write_atomic(out, text + "\n" + canonical(trailer) + "\n")
    return len(keep)


def verify(path: Path) -> Verified:
    """Check a bundle offline; raises CouldNotVerify naming the first problem."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the bundle: {exc.strerror}") from None
    lines = raw.split(b"\n")
    if len(lines) != 3 or lines[2] != b"":
        raise CouldNotVerify(f"{path}: not an evidence bundle (expected two lines)")
    try:
        body, trailer = json.loads(lines[0]), json.loads(lines[1])
    except (ValueError, UnicodeDecodeError):
        raise CouldNotVerify(f"{path}: damaged (not valid JSON)") from None
    if not isinstance(body, dict) or not isinstance(trailer, dict) or \
            body.get("format") != FORMAT or trailer.get("format") != FORMAT:
        raise CouldNotVerify(f"{path}: not a spectral evidence bundle")
    if set(trailer) != TRAILER_KEYS or set(body) != BODY_KEYS:
        raise CouldNotVerify(f"{path}: altered (its fields are not the bundle's)")
    if canonical(body).encode() != lines[0] or canonical(trailer).encode() != lines[1]:
        raise CouldNotVerify(f"{path}: altered (not the form it was written in)")
    digest = hashlib.sha256(lines[0]).hexdigest()
    if trailer.get("sha256") != digest:
        raise CouldNotVerify(f"{path}: altered (its checksum does not match)")
    entries: list[dict[str, Any]] = body.get("entries") or []
    prev, seq = str(body.get("chained_from")), None
    for d in entries:
        if _digest(_body(d)) != d.get("hash"):
            raise CouldNotVerify(f"{path}: entry {d.get('seq')} was altered")
        if d.get("prev") != prev or (seq is not None and d.get("seq") != seq + 1):
            raise CouldNotVerify(f"{path}: entry {d.get('seq')} does not follow the one "
                                 f"before it")
        prev, seq = str(d["hash"]), int(d["seq"])
    keys = tuple(body.get("public_keys") or ())
    if keys:
        problems = check_signatures([*body.get("key_entries_before", []), *entries], keys)
        if problems:
            raise CouldNotVerify(f"{path}: {problems[0]}")
    sig, signer = trailer.get("signature"), body.get("signer")
    if (sig is None) != (signer is None) or (signer is not None and not valid(
            str(signer), digest, sig)):
        raise CouldNotVerify(f"{path}: the bundle's own signature does not match")
    if signer is not None and keys and str(signer) not in _trusted(body, keys):
        raise CouldNotVerify(f"{path}: signed by a key the ledger does not trust")
    for name, doc in (body.get("snapshots") or {}).items():
        from spectral.verify.fingerprint import seal

        if not isinstance(doc, dict) or seal(doc).get("seal") != doc.get("seal"):
            raise CouldNotVerify(f"{path}: snapshot {name} was altered")
    return Verified(str(body.get("environment")), len(entries),
                    entries[0]["seq"] if entries else None, seq,
                    [key_id(k) for k in keys], len(body.get("snapshots") or {}), bool(keys))


def _trusted(body: dict[str, Any], roots: tuple[str, ...]) -> list[str]:
    """Every key the ledger trusted at some point (roots and keys added by key entries)."""
    added = [str(d.get("data", {}).get("add")) for d in
             [*body.get("key_entries_before", []), *body.get("entries", [])]
             if d.get("kind") == "key" and d.get("data", {}).get("add")]
    return [*roots, *added]
