"""Signed checkpoints: with an Ed25519 key configured, every append signs the entry's hash, which
covers the whole chain before it. The hash chain proves order; the signature proves who wrote
it: a chain recomputed by someone without the key has no valid signatures.

Trust starts from the public keys in the configuration. A `key` entry introduces a key (the first
one signed by the key it introduces, which must be a configured one) or rotates keys (signed by a
key already trusted: it adds a key, or revokes one). From the first `key` entry on, every entry
must be signed by a key trusted at that point; entries before it were written before signing
was set up, and the first signature covers them through the chain. Uses the `cryptography`
package's Ed25519; nothing here is hand-rolled."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spectral.errors import ConfigError

if TYPE_CHECKING:   # the library loads when a key is used: reading an unsigned ledger needs none
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )


def key_id(public: str) -> str:
    """A short, stable name for a public key (its raw bytes, base64)."""
    return hashlib.sha256(base64.b64decode(public)).hexdigest()[:16]


def public_text(key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def load_private(text: str) -> Ed25519PrivateKey:
    """A private key from PEM (PKCS#8) or the raw 32 bytes in base64."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError):
        raise ConfigError("the ledger signing key is not an Ed25519 private key (PEM or "
                          "base64 of its 32 raw bytes)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("the ledger signing key is not an Ed25519 key")
    return key


def load_public(text: str) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError):
        raise ConfigError(f"not an Ed25519 public key (base64 of 32 raw bytes): "
                          f"{text[:12]}...") from None


@dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey

    @property
    def public(self) -> str:
        return public_text(self.private.public_key())

    def sign(self, entry_hash: str) -> dict[str, str]:
        signature = self.private.sign(entry_hash.encode())
        return {"key": key_id(self.public), "value": base64.b64encode(signature).decode()}


def valid(public: str, entry_hash: str, sig: Any) -> bool:
    if not isinstance(sig, dict) or not isinstance(sig.get("value"), str) or \
            sig.get("key") != key_id(public):
        return False
    from cryptography.exceptions import InvalidSignature

    try:
        load_public(public).verify(base64.b64decode(sig["value"]), entry_hash.encode())
    except (InvalidSignature, ValueError, ConfigError):
        return False
    return True


def check_signatures(entries: list[dict[str, Any]], roots: tuple[str, ...]) -> list[str]:
    """What is wrong with the signatures of a chain (its entries as parsed), trusting `roots`:
    the first problem of each entry, in order."""
    return [problem for _, problem in signature_problems(entries, roots)]


def signature_problems(entries: list[dict[str, Any]],
                       roots: tuple[str, ...]) -> list[tuple[int, str]]:
    """The same, each with the index of the entry it is about (so a reader can name its line)."""
    return _walk(entries, roots)[0]


def trusted_at_end(entries: list[dict[str, Any]], roots: tuple[str, ...]) -> dict[str, str]:
    """The keys (key id -> public key) a chain trusts after its last entry: introduced,
    added and not revoked. Only meaningful when `signature_problems` found nothing."""
    return _walk(entries, roots)[1]


def _walk(entries: list[dict[str, Any]], roots: tuple[str, ...]
          ) -> tuple[list[tuple[int, str]], dict[str, str]]:
    from spectral.ledger.payloads import KeyRecord  # here: the payloads import the store

    trusted: dict[str, str] = {}          # key id -> public key, once introduced
    if not roots:
        return [], trusted
    root_ids = {key_id(r): r for r in roots}
    problems: list[tuple[int, str]] = []
    started = False
    for i, d in enumerate(entries):
        seq, digest, sig = d.get("seq"), str(d.get("hash")), d.get("sig")
        raw = d.get("data")
        key = KeyRecord.from_json(raw if isinstance(raw, dict) else {})
        if d.get("kind") == "key" and not started:
            public = key.add or ""
            if not public or key_id(public) not in root_ids:
                problems.append((i, f"entry {seq}: introduces a key that is not configured"))
                continue
            if not valid(public, digest, sig):
                problems.append((i, f"entry {seq}: the key introduction is not signed by "
                                    f"its key"))
                continue
            trusted[key_id(public)] = public
            started = True
            continue
        if not started:
            continue
        signer = trusted.get(str(sig.get("key"))) if isinstance(sig, dict) else None
        if sig is None:
            problems.append((i, f"entry {seq}: not signed"))
        elif signer is None:
            problems.append((i, f"entry {seq}: signed by a key that is not trusted here"))
        elif not valid(signer, digest, sig):
            problems.append((i, f"entry {seq}: its signature does not match (altered or "
                                f"forged)"))
        elif d.get("kind") == "key":
            if key.add:
                trusted[key_id(key.add)] = key.add
            if key.revoke:
                trusted.pop(key_id(key.revoke), None)
    if not started and entries:
        problems.append((0, f"entry {entries[0].get('seq')}: not signed (signing keys are "
                            f"configured, but no signed key introduction is in the ledger)"))
    return problems, trusted
