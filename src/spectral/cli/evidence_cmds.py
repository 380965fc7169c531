"""`spectral dr evidence export | verify` and the signing keys of the ledger
(`spectral dr log keygen | add-key | revoke-key`)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from spectral.cli.state import state

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
    environment = st.environment()
    when = parse_time(since) if since else None
    count = export(environment.ledger, environment.name, out, when)
    st.emit({"bundle": str(out), "entries": count},
            lambda c: c.print(f"{environment.name}: {count} entries -> {out}"))


@evidence_app.command("verify")
def verify_cmd(ctx: typer.Context,
               bundle: Path = typer.Argument(..., help="The bundle file.")) -> None:
    """Check a bundle with no access to the database or the store: every entry's hash, the
    chain, the signatures against the bundle's keys, the snapshots' seals. Exit 3 when any
    byte was changed."""
    from spectral.ledger.bundle import verify

    st = state(ctx)
    found = verify(bundle)
    st.emit(found.__dict__, lambda c: c.print(
        f"{bundle}: intact: {found.entries} entries of {found.environment}"
        + (f" ({found.first}..{found.last})" if found.entries else "")
        + (f", signed by keys {', '.join(found.keys)}" if found.signed else ", unsigned")
        + f", {found.snapshots} snapshot(s)"))


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
    _key_entry(ctx, {"add": public_key, "summary": "signing key added"})


def revoke_key_cmd(ctx: typer.Context, public_key: str = typer.Option(
        ..., "--public-key", help="The key (base64) no longer trusted from this entry on.")) \
        -> None:
    """Rotate keys, step 2: a ledger entry, signed by a trusted key, that retires one."""
    _key_entry(ctx, {"revoke": public_key, "summary": "signing key revoked"})


def _key_entry(ctx: typer.Context, data: dict[str, str]) -> None:
    from spectral.errors import UsageError
    from spectral.ledger import EntryKind
    from spectral.ledger.signing import key_id, load_public

    st = state(ctx)
    environment = st.environment()
    if environment.ledger.signer is None:
        raise UsageError("no signing_key configured for this environment: a key entry must "
                         "be signed")
    key = data.get("add") or data.get("revoke") or ""
    load_public(key)
    entry = environment.ledger.append(EntryKind.KEY, environment.name, data)
    st.emit({"seq": entry.seq, **entry.data}, lambda c: c.print(
        f"{environment.name}: ledger entry #{entry.seq}: {data['summary']} ({key_id(key)})"))
