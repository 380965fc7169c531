"""The ledger in a shared store: a git repository (a bare remote on disk) and an S3 bucket (the
S3 server the tests start). Two processes appending 50 entries each end with 100 entries, one
chain, nothing lost or duplicated; a reader notices a store that went backwards; snapshots live
in the same store; signatures: a chain recomputed without the key is rejected, naming the first
entry that is not signed by it, and key rotation is a signed entry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3_server import S3Server, s3_server
from spectral.config.load import load_config
from spectral.ledger import EntryKind
from spectral.ledger.open import open_ledger
from spectral.ledger.remote import StoreWentBack
from spectral.ledger.signing import Signer, public_text
from spectral.runner import run
from spectral.verify.document import Fingerprint, SchemaEntry, Source

WRITER = """
import sys
from pathlib import Path
from spectral.config.load import load_config
from spectral.ledger import EntryKind
from spectral.ledger.open import open_ledger
work, tag, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ledger = open_ledger(load_config(None, cwd=work), "prod")
for i in range(n):
    ledger.append(EntryKind.DRILL, "prod", {"writer": tag, "i": i, "outcome": "pass"})
"""


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


def git_store(remote: Path) -> str:
    return f'[environments.prod.evidence]\nstore = "git"\nremote = "{remote}"\n'


def s3_store(server: S3Server, bucket: str) -> str:
    server.client().create_bucket(Bucket=bucket)
    return (f'[environments.prod.evidence]\nstore = "s3"\nendpoint = "{server.endpoint}"\n'
            f'bucket = "{bucket}"\nprefix = "spectral/prod"\npath_style = true\n'
            f'access_key_id = "env:S3_KEY"\nsecret_access_key = "env:S3_SECRET"\n'
            f'verify_tls = false\n')


def clone(root: Path, name: str, store: str, extra: str = "") -> Path:
    """A fresh working directory (a CI runner's checkout) sharing only the store."""
    work = root / name
    work.mkdir()
    (work / "spectral.toml").write_text(
        '[environments.prod]\nprovider = "local"\nposture = "pitr"\n' + store + extra)
    return work


def env_for(server: S3Server | None) -> dict[str, str]:
    extra = {"S3_KEY": server.key_id, "S3_SECRET": server.secret} if server else {}
    return {**os.environ, **extra}


def store_kinds(tmp_path: Path, s3: S3Server, kind: str) -> tuple[str, S3Server | None]:
    if kind == "git":
        remote = tmp_path / "evidence.git"
        run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], timeout=60)
        return git_store(remote), None
    return s3_store(s3, "evidence-" + tmp_path.name[-8:].lower().replace("_", "-")), s3


@pytest.mark.parametrize("kind", ["git", "s3"])
def test_two_writers_fifty_each_make_one_chain_of_a_hundred(tmp_path: Path, s3: S3Server,
                                                            kind: str) -> None:
    store, server = store_kinds(tmp_path, s3, kind)
    a, b = clone(tmp_path, "a", store), clone(tmp_path, "b", store)
    env = env_for(server)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(w), tag, "50"], env=env,
                              stderr=subprocess.PIPE, text=True)
             for w, tag in ((a, "a"), (b, "b"))]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    os.environ.update({k: v for k, v in env.items() if k.startswith("S3_")})
    reader = open_ledger(load_config(None, cwd=clone(tmp_path, "c", store)), "prod")
    entries = reader.entries()
    assert [e.seq for e in entries] == list(range(1, 101))
    written = sorted((e.data["writer"], e.data["i"]) for e in entries)
    assert written == sorted([("a", i) for i in range(50)] + [("b", i) for i in range(50)])
    assert reader.verify() == []


@pytest.mark.parametrize("kind", ["git", "s3"])
def test_a_store_that_went_backwards_is_noticed(tmp_path: Path, s3: S3Server,
                                                kind: str) -> None:
    store, server = store_kinds(tmp_path, s3, kind)
    os.environ.update({k: v for k, v in env_for(server).items() if k.startswith("S3_")})
    writer = open_ledger(load_config(None, cwd=clone(tmp_path, "w", store)), "prod")
    for i in range(3):
        writer.append(EntryKind.DRILL, "prod", {"i": i})
    reader = open_ledger(load_config(None, cwd=clone(tmp_path, "r", store)), "prod")
    assert len(reader.entries()) == 3
    if kind == "git":        # rewind the remote's branch to the first commit: a force-push
        remote = tmp_path / "evidence.git"
        first = run(["git", "-C", str(remote), "rev-list", "--max-parents=0", "main"],
                    timeout=60).stdout.strip()
        run(["git", "-C", str(remote), "update-ref", "refs/heads/main", first], timeout=60)
        expected = "force-push"
    else:                    # overwrite entry 2's object
        assert server is not None
        bucket = json.loads(json.dumps(load_config(None, cwd=tmp_path / "r")
                                       .environments["prod"].evidence.bucket))
        server.client().put_object(Bucket=bucket, Key="spectral/prod/entries/000000000002.json",
                                   Body=b'{"forged": true}')
        expected = "overwritten"
    with pytest.raises(StoreWentBack, match=expected):
        reader.entries()


@pytest.mark.parametrize("kind", ["git", "s3"])
def test_snapshots_live_in_the_store(tmp_path: Path, s3: S3Server, kind: str) -> None:
    from spectral.verify import snapshots

    store, server = store_kinds(tmp_path, s3, kind)
    os.environ.update({k: v for k, v in env_for(server).items() if k.startswith("S3_")})
    writer = open_ledger(load_config(None, cwd=clone(tmp_path, "w", store)), "prod")
    snapshots.record(writer, "prod", a_fingerprint("0/16B3748", "abc"))
    reader = open_ledger(load_config(None, cwd=clone(tmp_path, "r", store)), "prod")
    reader.sync()
    found = snapshots.listing(reader.dir)
    assert [r.lsn for r in found] == ["0/16B3748"]
    assert reader.entries()[-1].data["path"].startswith("snapshots/")


def a_fingerprint(lsn: str, checksum: str) -> Fingerprint:
    """A sealed fingerprint document of one schema, as `dr snapshot` would keep it."""
    return Fingerprint("2026-11-30T10:00:00.000+00:00", Source("17.2", 170002, lsn, "app"),
                       False, 3, {"core": SchemaEntry(False, checksum)}, {}, {}).sealed()


def keys() -> tuple[Signer, str]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    signer = Signer(Ed25519PrivateKey.generate())
    return signer, signer.public


def test_signed_ledger_verifies_and_a_recomputed_chain_does_not(tmp_path: Path) -> None:
    from spectral.ledger.store import Ledger, _digest

    signer, public = keys()
    ledger = Ledger(tmp_path / "ev", signer=signer, trusted=(public,))
    for i in range(4):
        ledger.append(EntryKind.DRILL, "prod", {"i": i})
    assert ledger.verify() == []
    assert ledger.entries()[0].kind is EntryKind.KEY          # introduced on the first append
    # someone who can write the file, but has no key, edits entry 3 and recomputes the chain
    lines = [json.loads(line) for line in ledger.path.read_text().splitlines()]
    lines[2]["data"]["i"] = 99
    prev = lines[1]["hash"]
    for d in lines[2:]:
        d["prev"] = prev
        d.pop("sig", None)
        d["hash"] = _digest({k: v for k, v in d.items() if k not in ("hash", "sig")})
        prev = d["hash"]
    ledger.path.write_text("".join(json.dumps(d, sort_keys=True) + "\n" for d in lines))
    ledger.head.write_text(json.dumps({"seq": lines[-1]["seq"], "hash": prev}) + "\n")
    problems = [p.problem for p in ledger.verify()]
    assert problems and problems[0].startswith("entry 3: not signed"), problems
    # and without any key: the same file read by a verifier that trusts the key still fails
    unsigned = Ledger(tmp_path / "other", trusted=(public,))
    unsigned.append(EntryKind.DRILL, "prod", {"i": 0})
    assert "entry 1: not signed" in unsigned.verify()[0].problem


def test_key_rotation_is_a_signed_entry(tmp_path: Path) -> None:
    from spectral.ledger.store import Ledger

    old, old_public = keys()
    new, new_public = keys()
    stranger, _ = keys()
    ledger = Ledger(tmp_path / "ev", signer=old, trusted=(old_public,))
    ledger.append(EntryKind.DRILL, "prod", {"i": 0})
    ledger.append(EntryKind.KEY, "prod", {"add": new_public, "summary": "rotation"})
    rotated = Ledger(tmp_path / "ev", signer=new, trusted=(old_public,))
    rotated.append(EntryKind.KEY, "prod", {"revoke": old_public, "summary": "old key retired"})
    rotated.append(EntryKind.DRILL, "prod", {"i": 1})
    assert rotated.verify() == []
    Ledger(tmp_path / "ev", signer=old, trusted=(old_public,)).append(
        EntryKind.DRILL, "prod", {"i": 2})                   # the revoked key signs again
    forged = Ledger(tmp_path / "ev", signer=stranger, trusted=(old_public,))
    forged.append(EntryKind.DRILL, "prod", {"i": 3})
    problems = [p.problem for p in rotated.verify()]
    assert problems[0].startswith("entry 6: signed by a key that is not trusted"), problems
    assert problems[1].startswith("entry 7: signed by a key that is not trusted"), problems
    assert public_text  # (used by the CLI's keygen)


def test_bundle_verifies_offline_and_fails_on_any_changed_byte(tmp_path: Path) -> None:
    from spectral.errors import CouldNotVerify
    from spectral.ledger import bundle
    from spectral.ledger.store import Ledger
    from spectral.verify import snapshots

    signer, public = keys()
    ledger = Ledger(tmp_path / "ev", signer=signer, trusted=(public,))
    ledger.append(EntryKind.DRILL, "prod", {"outcome": "pass", "i": 0})
    doc = a_fingerprint("0/1", "c")
    time.sleep(0.005)   # entries' times have millisecond resolution: the slice below is by time
    snapshots.record(ledger, "prod", doc)
    time.sleep(0.005)
    ledger.append(EntryKind.DRILL, "prod", {"outcome": "pass", "i": 1, "note": "é ✓"})
    out = tmp_path / "bundle.json"
    assert bundle.export(ledger, "prod", out) == 4           # key, drill, snapshot, drill
    found = bundle.verify(out, (public,))     # against the key the auditor was given
    assert found.entries == 4 and found.signed and found.snapshots == 1
    raw = out.read_bytes()
    for i in range(len(raw)):                                # every byte, changed
        out.write_bytes(raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1:])
        with pytest.raises(CouldNotVerify):
            bundle.verify(out, (public,))
    out.write_bytes(raw)
    # a slice: since the snapshot, chained from the entry before it
    since = tmp_path / "since.json"
    assert bundle.export(ledger, "prod", since, since=ledger.entries()[2].at) == 2
    assert bundle.verify(since, (public,)).first == 3


def test_bundle_cli_needs_nothing_but_the_file(tmp_path: Path) -> None:
    from conftest import spectral

    key = tmp_path / "signing.pem"
    work = tmp_path / "w"
    work.mkdir()
    (work / "spectral.toml").write_text('[environments.prod]\nprovider = "local"\n')
    made = spectral("dr", "log", "keygen", "--out", str(key), "--json", cwd=work)
    assert made.returncode == 0, made.stderr
    public = json.loads(made.stdout)["public_key"]
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    (work / "spectral.toml").write_text(
        f'[environments.prod]\nprovider = "local"\n[environments.prod.evidence]\n'
        f'signing_key = "file:{key}"\npublic_keys = ["{public}"]\n')
    rec = spectral("dr", "incident", "record", "--playbook", "schema-drop", "--near-miss",
                   "--summary", "rehearsal", cwd=work)
    assert rec.returncode == 0, rec.stderr
    assert spectral("dr", "log", "verify", cwd=work).returncode == 0
    out = tmp_path / "evidence.bundle"
    res = spectral("dr", "evidence", "export", "--out", str(out), cwd=work)
    assert res.returncode == 0, res.stderr
    elsewhere = tmp_path / "auditor"
    elsewhere.mkdir()
    ok = spectral("dr", "evidence", "verify", str(out), "--key", public, cwd=elsewhere)
    assert ok.returncode == 0 and "intact" in ok.stdout, ok.stderr
    out.write_bytes(out.read_bytes().replace(b"rehearsal", b"rehearsaL"))
    bad = spectral("dr", "evidence", "verify", str(out), "--key", public, cwd=elsewhere)
    assert bad.returncode == 3 and "altered" in bad.stderr
    private = key.read_text()
    for text in (made.stdout, made.stderr, rec.stdout, res.stdout, ok.stdout):
        assert private.split("\n")[1] not in text
    for path in work.rglob("*"):
        if path.is_file():
            assert private.split("\n")[1].encode() not in path.read_bytes()


def test_an_object_name_that_is_not_a_plain_file_is_refused(tmp_path: Path, s3: S3Server) -> None:
    from spectral.errors import CouldNotVerify

    store, server = store_kinds(tmp_path, s3, "s3")
    os.environ.update({k: v for k, v in env_for(server).items() if k.startswith("S3_")})
    writer = open_ledger(load_config(None, cwd=clone(tmp_path, "w", store)), "prod")
    writer.append(EntryKind.DRILL, "prod", {"i": 0})
    bucket = load_config(None, cwd=tmp_path / "w").environments["prod"].evidence.bucket
    s3.client().put_object(Bucket=bucket, Key="spectral/prod/snapshots/..", Body=b"{}")
    reader = open_ledger(load_config(None, cwd=clone(tmp_path, "r", store)), "prod")
    with pytest.raises(CouldNotVerify, match="not one spectral writes"):
        reader.sync()
    assert not (tmp_path / "r" / ".spectral").joinpath("..").is_file()


def test_a_reinvite_list_never_leaves_the_machine_through_the_git_store(tmp_path: Path) -> None:
    """An exit's re-invite list holds users' e-mails: written into the evidence folder (0600)
    and named in the ledger, but the git store publishes its folder, so it was pushed."""
    remote = tmp_path / "evidence.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], timeout=60)
    writer = open_ledger(load_config(None, cwd=clone(tmp_path, "w", git_store(remote))), "prod")
    writer.sync()
    (writer.dir / "reinvites-20261205T000000.csv").write_text("id,email\n1,a@example.test\n")
    writer.append(EntryKind.EXIT, "prod", {"reinvites": ["reinvites-20261205T000000.csv"]})
    reader = open_ledger(load_config(None, cwd=clone(tmp_path, "r", git_store(remote))), "prod")
    reader.sync()
    assert reader.entries()[-1].data["reinvites"] == ["reinvites-20261205T000000.csv"]
    assert not list(reader.dir.glob("reinvites-*")), "the e-mails were pushed"
    assert (writer.dir / "reinvites-20261205T000000.csv").exists()
