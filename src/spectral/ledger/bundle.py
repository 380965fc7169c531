"""The evidence bundle: one file an auditor takes away and checks offline, with nothing but
spectral (or the format below and any SHA-256 and Ed25519 tool).

Format: line 1 is the body, canonical JSON (sorted keys, no spaces, UTF-8); line 2 is the trailer
`{"format":"spectral.evidence-bundle","sha256":<hex of line 1's bytes>,"signature":...}`.
The body holds the ledger slice (every entry as written, hash and signature included), the hash
the slice chains from, the public keys the ledger trusts, and the snapshots (fingerprints) the
slice's drills compared with; the drills' results are in their entries. Verifying recomputes
every entry's hash and the chain, checks that both lines are exactly the canonical form (one
changed byte anywhere fails), and checks the signatures against keys the verifier trusts from
outside the bundle (`--key`, or the environment's `public_keys`): the keys written inside it
are whatever its author chose, so a bundle that is unsigned, or signed only by keys it brings
itself, is "authorship cannot be verified", never intact."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spectral.durable import write_atomic
from spectral.errors import CouldNotVerify, UsageError
from spectral.ledger.signing import key_id, signature_problems, trusted_at_end, valid
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


def environment_of(path: Path) -> str | None:
    """The environment a bundle says it is of (to find the keys to check it against); None
    when the file is not readable as a bundle (verify then says what is wrong)."""
    try:
        body = json.loads(path.read_bytes().split(b"\n", 1)[0])
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return str(body.get("environment")) if isinstance(body, dict) else None


def verify(path: Path, trusted: tuple[str, ...]) -> Verified:
    """Check a bundle offline against the public keys the verifier trusts (`--key`, or the
    environment's `public_keys`); never against the keys written inside it, which whoever
    wrote the file chose. Raises CouldNotVerify naming the first problem."""
    body, digest, signature = _read(path)
    entries: list[dict[str, Any]] = body.get("entries") or []
    before: list[dict[str, Any]] = body.get("key_entries_before") or []
    seq = _check_chain(path, str(body.get("chained_from")), entries, before)
    keys = _check_authorship(path, (body.get("signer"), signature), digest,
                             [*before, *entries], trusted)
    for name, doc in (body.get("snapshots") or {}).items():
        from spectral.verify.fingerprint import seal

        if not isinstance(doc, dict) or seal(doc).get("seal") != doc.get("seal"):
            raise CouldNotVerify(f"{path}: snapshot {name} was altered")
    return Verified(str(body.get("environment")), len(entries),
                    entries[0]["seq"] if entries else None, seq, keys,
                    len(body.get("snapshots") or {}), True)


def _read(path: Path) -> tuple[dict[str, Any], str, Any]:
    """The body, after checking the file is exactly a bundle as written, its SHA-256 and the
    trailer's signature of it."""
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
    return body, digest, trailer.get("signature")


def _check_chain(path: Path, prev: str, entries: list[dict[str, Any]],
                 before: list[dict[str, Any]]) -> int | None:
    """Every entry's hash, and the slice's chain; the key entries before the slice are not
    chained to it, but each must still match its own hash (its signature covers only that)."""
    for d in before:
        if not isinstance(d, dict) or d.get("kind") != "key":
            raise CouldNotVerify(f"{path}: altered (a key entry before the slice is not one)")
        if _digest(_body(d)) != d.get("hash"):
            raise CouldNotVerify(f"{path}: key entry {d.get('seq')} before the slice was "
                                 f"altered")
    seq = None
    for d in entries:
        if _digest(_body(d)) != d.get("hash"):
            raise CouldNotVerify(f"{path}: entry {d.get('seq')} was altered")
        if d.get("prev") != prev or (seq is not None and d.get("seq") != seq + 1):
            raise CouldNotVerify(f"{path}: entry {d.get('seq')} does not follow the one "
                                 f"before it")
        prev, seq = str(d["hash"]), int(d["seq"])
    return seq


def _check_authorship(path: Path, signed: tuple[Any, Any], digest: str,
                      chain: list[dict[str, Any]], trusted: tuple[str, ...]) -> list[str]:
    """Who wrote it: every entry from the first key introduction on, and the bundle itself,
    signed by keys that chain back to one the verifier trusts. The key ids that did."""
    cannot = f"{path}: authorship cannot be verified"
    if not trusted:
        raise CouldNotVerify(f"{cannot}: no trusted public key to check it against (the keys "
                             f"written in a bundle are its author's claim, not evidence)",
                             hint="spectral dr evidence verify FILE --key <public key you "
                                  "were given> (or public_keys in the environment)")
    problems = signature_problems(chain, trusted)
    if problems:
        raise CouldNotVerify(f"{cannot}: {problems[0][1]}")
    signer, sig = signed
    if signer is None or sig is None:
        raise CouldNotVerify(f"{cannot}: the bundle is not signed")
    if not valid(str(signer), digest, sig):
        raise CouldNotVerify(f"{path}: the bundle's own signature does not match")
    at_end = trusted_at_end(chain, trusted) if chain else {key_id(k): k for k in trusted}
    if key_id(str(signer)) not in at_end:
        raise CouldNotVerify(f"{cannot}: signed by key {key_id(str(signer))}, which is not "
                             f"one you trust (trusted: "
                             f"{', '.join(key_id(k) for k in trusted)})")
    return sorted({str(d["sig"]["key"]) for d in chain if isinstance(d.get("sig"), dict)}
                  | {key_id(str(signer))})
