"""`spectral dr evidence export | verify` and the signing keys of the ledger
(`spectral dr log keygen | add-key | revoke-key`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from spectral.cli.state import AppState, state

if TYPE_CHECKING:
    from spectral.ledger.payloads import KeyRecord

evidence_app = typer.Typer(no_args_is_help=True, help="Evidence an auditor can take away: "
                                                       "export a bundle, verify one offline.")


def register(dr: typer.Typer, log_app: typer.Typer) -> None:
    dr.add_typer(evidence_app, name="evidence")
    log_app.command("keygen")(keygen_cmd)
    log_app.command("add-key")(add_key_cmd)
    log_app.command("revoke-key")(revoke_key_cmd)


@evidence_app.command("export")
def export_cmd(ctx: typer.Context,
               out: Path = typer.Option(..., "--out", help="The bundle file to write."),
               since: str | None = typer.Option(None, "--since", help="Only entries from this "
                                                "date or time on (ISO 8601).")) -> None:
    """Write one file with the ledger (or its slice since DATE), its signatures and public
    keys, and the snapshots its drills compared with; `dr evidence verify` checks it offline."""
    from spectral.errors import UsageError
    from spectral.ledger.bundle import export
    from spectral.recovery_target import parse_time

    st = state(ctx)
    if out.exists():
        raise UsageError(f"{out} exists; the bundle is written to a new file")
    when = parse_time(since, "--since") if since else None
    environment = st.environment()
    count = export(environment.ledger, environment.name, out, when)
    signed = environment.ledger.signer is not None
    st.emit({"bundle": str(out), "entries": count, "signed": signed},
            lambda c: c.print(f"{environment.name}: {count} entries -> {out}"))
    if not signed:
        st.err.print("note: no signing_key is configured, so the bundle is unsigned and "
                     "`dr evidence verify` will answer 'authorship cannot be verified'")


@evidence_app.command("verify")
def verify_cmd(ctx: typer.Context,
               bundle: Path = typer.Argument(..., help="The bundle file."),
               key: list[str] = typer.Option([], "--key", help="A public key (base64) you "
                                             "trust, as you were given it; repeat for more. "
                                             "Default: the environment's public_keys.")) -> None:
    """Check a bundle with no access to the database or the store: every entry's hash, the
    chain, the snapshots' seals, and who wrote it: the signatures against keys you trust
    (--key, or the environment's public_keys), never against keys the bundle brings. Exit 3
    when any byte was changed or the authorship cannot be verified."""
    from spectral.ledger.bundle import verify

    st = state(ctx)
    found = verify(bundle, _trusted_keys(st, bundle, key))
    st.emit(found.__dict__, lambda c: c.print(
        f"{bundle}: intact: {found.entries} entries of {found.environment}"
        + (f" ({found.first}..{found.last})" if found.entries else "")
        + f", signed by trusted keys {', '.join(found.keys)}"
        + f", {found.snapshots} snapshot(s)"))


def _trusted_keys(st: AppState, bundle: Path, given: list[str]) -> tuple[str, ...]:
    """--key, else the public_keys of the environment (--env, else the bundle's own
    environment's name when the configuration has it); none when there is no configuration."""
    from spectral.errors import SpectralError
    from spectral.ledger.bundle import environment_of
    from spectral.ledger.signing import load_public

    for text in given:
        load_public(text)                   # not a key: a usage error, exit 2
    if given:
        return tuple(given)
    try:
        environments = st.config.environments
    except SpectralError:
        return ()
    name = st.env or environment_of(bundle)
    if name is None or name not in environments:
        return ()
    try:
        return tuple(environments[name].evidence.public_keys)
    except SpectralError:           # its settings have a problem: as a file that does not load
        return ()


def keygen_cmd(ctx: typer.Context,
               out: Path = typer.Option(..., "--out", help="Where to write the private key "
                                        "(PEM, mode 0600; a new file).")) -> None:
    """Make an Ed25519 signing key: the private key goes to a file only you can read (use it
    as `signing_key = "file:PATH"`), the public key is printed for `public_keys`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from spectral.errors import UsageError
    from spectral.ledger.signing import key_id, public_text

    st = state(ctx)
    if out.exists():
        raise UsageError(f"{out} exists; a key is never overwritten")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = public_text(key.public_key())
    st.emit({"private_key_file": str(out), "public_key": public, "key_id": key_id(public)},
            lambda c: c.print(f"private key -> {out} (0600)\npublic key (for public_keys): "
                              f"{public}\nkey id: {key_id(public)}"))


def add_key_cmd(ctx: typer.Context, public_key: str = typer.Option(
        ..., "--public-key", help="The new key (base64), trusted from this entry on.")) -> None:
    """Rotate keys, step 1: a ledger entry, signed by the current key, that trusts another."""
    from spectral.ledger.payloads import KeyRecord

    _key_entry(ctx, KeyRecord("signing key added", add=public_key))


def revoke_key_cmd(ctx: typer.Context, public_key: str = typer.Option(
        ..., "--public-key", help="The key (base64) no longer trusted from this entry on.")) \
        -> None:
    """Rotate keys, step 2: a ledger entry, signed by a trusted key, that retires one."""
    from spectral.ledger.payloads import KeyRecord

    _key_entry(ctx, KeyRecord("signing key revoked", revoke=public_key))


def _key_entry(ctx: typer.Context, record: KeyRecord) -> None:
    from spectral.errors import UsageError
    from spectral.ledger.signing import key_id, load_public

    st = state(ctx)
    environment = st.environment()
    if environment.ledger.signer is None:
        raise UsageError("no signing_key configured for this environment: a key entry must "
                         "be signed")
    key = record.add or record.revoke or ""
    load_public(key)
    entry = environment.ledger.record(environment.name, record)
    st.emit({"seq": entry.seq, **entry.data}, lambda c: c.print(
        f"{environment.name}: ledger entry #{entry.seq}: {record.summary} ({key_id(key)})"))
