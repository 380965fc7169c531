"""Issue 27, defects 13 and 14: evidence that proves who wrote it, truncation a fresh reader can
see, and the small ones (an interrupted exit cleans up after itself, hole times shown exactly).

- A bundle verifies as intact only against a key the verifier trusts from outside it (`--key`
  or the environment's `public_keys`): a rewritten bundle with its keys and signatures dropped,
  or one signed by the forger's own key, is exit 3 "authorship cannot be verified".
- `dr log verify` names the entry and its line for a signature problem (never "line 0").
- A store cut short: a fresh checkout of a force-pushed git store sees a newest entry older
  than the cadence allows and exits 3; a git server with `receive.denyNonFastForwards` refuses
  the force-push; an S3 bucket with versioning names the deleted and the overwritten entries."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import SPECTRAL, ClusterFactory, exit_target, spectral
from s3_server import S3Server, s3_server
from spectral.config.load import load_config
from spectral.ledger import EntryKind
from spectral.ledger.open import open_ledger
from spectral.ledger.signing import Signer
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect, with_dbname
from spectral.runner import Completed, run
from spectral.waits import wait_until


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


def keys() -> tuple[Signer, str]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    signer = Signer(Ed25519PrivateKey.generate())
    return signer, signer.public


def workdir(root: Path, name: str, evidence: str = "") -> Path:
    """A fresh working directory (a CI runner's checkout) sharing only the store."""
    work = root / name
    work.mkdir()
    (work / "spectral.toml").write_text(
        '[environments.prod]\nprovider = "local"\nposture = "pitr"\n' + evidence)
    return work


# ---- 13: a bundle's authorship comes from a key the verifier trusts -------------------------
def signed_bundle(tmp_path: Path) -> tuple[Path, str]:
    from spectral.ledger import bundle
    from spectral.ledger.store import Ledger

    signer, public = keys()
    ledger = Ledger(tmp_path / "ev", signer=signer, trusted=(public,))
    for i in range(3):
        ledger.append(EntryKind.DRILL, "prod", {"outcome": "pass", "i": i})
    out = tmp_path / "genuine.bundle"
    bundle.export(ledger, "prod", out)
    return out, public


def forge_unsigned(genuine: Path, out: Path) -> None:
    """Rewrite entries, drop the key entries and every signature, recompute the hashes, the
    chain and the trailer: a bundle anyone who can write a file can make."""
    from spectral.ledger import bundle
    from spectral.ledger.store import GENESIS, _body, _digest

    body = json.loads(genuine.read_bytes().split(b"\n")[0])
    entries = [d for d in body["entries"] if d["kind"] != "key"]
    prev = GENESIS
    for seq, d in enumerate(entries, start=1):
        d.pop("sig", None)
        d["data"]["outcome"] = "pass"
        d["data"]["note"] = "forged"
        d["seq"], d["prev"] = seq, prev
        d["hash"] = prev = _digest(_body(d))
    body.update({"entries": entries, "key_entries_before": [], "public_keys": [],
                 "signer": None, "chained_from": GENESIS})
    text = bundle.canonical(body)
    trailer = {"format": bundle.FORMAT, "sha256": hashlib.sha256(text.encode()).hexdigest(),
               "signature": None}
    out.write_text(text + "\n" + bundle.canonical(trailer) + "\n")


def forge_self_keyed(tmp_path: Path, out: Path) -> None:
    """The forger's own key signs everything and is written into the bundle as its key."""
    from spectral.ledger import bundle
    from spectral.ledger.store import Ledger

    forger, forger_public = keys()
    ledger = Ledger(tmp_path / "forged-ev", signer=forger, trusted=(forger_public,))
    for i in range(3):
        ledger.append(EntryKind.DRILL, "prod", {"outcome": "pass", "i": i, "note": "forged"})
    bundle.export(ledger, "prod", out)


def test_a_bundle_is_intact_only_against_a_key_trusted_from_outside_it(tmp_path: Path) -> None:
    genuine, public = signed_bundle(tmp_path)
    unsigned, self_keyed = tmp_path / "unsigned.bundle", tmp_path / "self-keyed.bundle"
    forge_unsigned(genuine, unsigned)
    forge_self_keyed(tmp_path, self_keyed)
    auditor = tmp_path / "auditor"                   # no configuration, no key given
    auditor.mkdir()
    for forged in (unsigned, self_keyed):
        res = spectral("dr", "evidence", "verify", str(forged), cwd=auditor)
        assert res.returncode == 3, res.stdout + res.stderr
        assert "authorship cannot be verified" in res.stderr, res.stderr
        assert "intact" not in res.stdout
        res = spectral("dr", "evidence", "verify", str(forged), "--key", public, cwd=auditor)
        assert res.returncode == 3 and "authorship cannot be verified" in res.stderr, \
            res.stdout + res.stderr
    # the genuine bundle: no key to check it against is not "intact" either
    res = spectral("dr", "evidence", "verify", str(genuine), cwd=auditor)
    assert res.returncode == 3 and "authorship cannot be verified" in res.stderr, res.stderr
    res = spectral("dr", "evidence", "verify", str(genuine), "--key", public, cwd=auditor)
    assert res.returncode == 0 and "intact" in res.stdout, res.stdout + res.stderr
    # a key the auditor trusts through the environment's configuration
    configured = workdir(tmp_path, "configured",
                         f'[environments.prod.evidence]\npublic_keys = ["{public}"]\n')
    res = spectral("dr", "evidence", "verify", str(genuine), cwd=configured)
    assert res.returncode == 0 and "intact" in res.stdout, res.stdout + res.stderr
    res = spectral("dr", "evidence", "verify", str(self_keyed), cwd=configured)
    assert res.returncode == 3 and "authorship cannot be verified" in res.stderr
    res = spectral("dr", "evidence", "verify", str(genuine), "--key", "not-a-key",
                   cwd=auditor)
    assert res.returncode == 2 and "Ed25519" in res.stderr, res.stderr


def test_a_bundle_whose_key_entry_was_rewritten_is_refused(tmp_path: Path) -> None:
    """A slice carries the key entries before it: an edited key entry (a forger's key put in
    place of the added one, its hash and signature kept) must not become trusted."""
    from spectral.errors import CouldNotVerify
    from spectral.ledger import bundle
    from spectral.ledger.store import Ledger

    old, old_public = keys()
    new, new_public = keys()
    forger, forger_public = keys()
    ledger = Ledger(tmp_path / "ev", signer=old, trusted=(old_public,))
    ledger.append(EntryKind.DRILL, "prod", {"i": 0})
    ledger.append(EntryKind.KEY, "prod", {"add": new_public, "summary": "rotation"})
    rotated = Ledger(tmp_path / "ev", signer=new, trusted=(old_public,))
    later = rotated.entries()[-1].at + timedelta(seconds=1)   # not the key entry's millisecond
    rotated.append(EntryKind.DRILL, "prod", {"i": 1}, at=later)
    out = tmp_path / "slice.bundle"
    bundle.export(rotated, "prod", out, since=later)
    assert bundle.verify(out, (old_public,)).entries == 1
    body = json.loads(out.read_bytes().split(b"\n")[0])
    body["key_entries_before"][-1]["data"]["add"] = forger_public
    for d in body["entries"]:           # the signature is not in the hash: re-signed
        d["sig"] = forger.sign(d["hash"])
    body["signer"] = forger_public
    text = bundle.canonical(body)
    digest = hashlib.sha256(text.encode()).hexdigest()
    trailer = {"format": bundle.FORMAT, "sha256": digest, "signature": forger.sign(digest)}
    out.write_text(text + "\n" + bundle.canonical(trailer) + "\n")
    with pytest.raises(CouldNotVerify):
        bundle.verify(out, (old_public,))


# ---- 13: `dr log verify` names the entry --------------------------------------------------
def test_log_verify_names_the_entry_and_line_of_a_signature_problem(tmp_path: Path) -> None:
    from spectral.ledger.store import Ledger, _body, _digest

    signer, public = keys()
    key_file = tmp_path / "signing.key"
    key_file.write_text(base64.b64encode(signer.private.private_bytes_raw()).decode())
    work = workdir(tmp_path, "w", f'[environments.prod.evidence]\nsigning_key = '
                                  f'"file:{key_file}"\npublic_keys = ["{public}"]\n')
    ledger = open_ledger(load_config(None, cwd=work), "prod")
    for i in range(4):
        ledger.append(EntryKind.DRILL, "prod", {"i": i})
    lines = [json.loads(line) for line in ledger.path.read_text().splitlines()]
    lines[2]["data"]["i"] = 99                         # entry 3 (after the key entry)
    prev = lines[1]["hash"]
    for d in lines[2:]:                                # recomputed without the key
        d.pop("sig", None)
        d["prev"] = prev
        d["hash"] = prev = _digest(_body(d))
    ledger.path.write_text("".join(json.dumps(d, sort_keys=True) + "\n" for d in lines))
    ledger.head.write_text(json.dumps({"seq": lines[-1]["seq"], "hash": prev}) + "\n")
    found = Ledger(ledger.dir, trusted=(public,)).verify()
    assert [(p.line, p.problem.split(":")[0]) for p in found] == \
        [(3, "entry 3"), (4, "entry 4"), (5, "entry 5")], found
    res = spectral("dr", "log", "verify", cwd=work)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "line 0" not in res.stdout, res.stdout
    assert "line 3: entry 3: not signed" in res.stdout, res.stdout


# ---- 13: truncation where a fresh reader looks --------------------------------------------
def bare_repo(path: Path, *, protected: bool) -> str:
    run(["git", "init", "-q", "--bare", "-b", "main", str(path)], timeout=60)
    if protected:       # what docs/scheduling.md tells the store's owner to set
        run(["git", "-C", str(path), "config", "receive.denyNonFastForwards", "true"],
            timeout=60)
        run(["git", "-C", str(path), "config", "receive.denyDeletes", "true"], timeout=60)
    return f'[environments.prod.evidence]\nstore = "git"\nremote = "{path}"\n'


def write_history(work: Path, now: datetime) -> None:
    """Entries over four months of a kept cadence, the newest two days old."""
    ledger = open_ledger(load_config(None, cwd=work), "prod")
    for days in (120, 90, 62, 33, 2):
        ledger.append(EntryKind.TABLETOP, "prod", {"summary": f"review {days} days ago"},
                      at=now - timedelta(days=days))


def force_push_back(tmp_path: Path, remote: Path, commits: int) -> Completed:
    """Someone with push access rewrites the branch without the newest commits."""
    attacker = tmp_path / "attacker"
    run(["git", "clone", "-q", str(remote), str(attacker)], timeout=60)
    run(["git", "-C", str(attacker), "reset", "-q", "--hard", f"HEAD~{commits}"], timeout=60)
    return run(["git", "-C", str(attacker), "push", "-q", "--force", "origin",
                "HEAD:refs/heads/main"], timeout=60, check=False)



def test_a_force_pushed_git_store_is_cut_short_to_a_fresh_checkout(tmp_path: Path) -> None:
    remote = tmp_path / "evidence.git"
    store = bare_repo(remote, protected=False)
    write_history(workdir(tmp_path, "writer", store), datetime.now(UTC))
    fresh = workdir(tmp_path, "runner-1", store)
    res = spectral("dr", "log", "verify", cwd=fresh)
    assert res.returncode == 0 and "5 entries" in res.stdout, res.stdout + res.stderr
    pushed = force_push_back(tmp_path, remote, 2)
    assert pushed.returncode == 0, pushed.stderr                       # unprotected
    fresh = workdir(tmp_path, "runner-2", store)                      # the next CI run
    res = spectral("dr", "log", "verify", cwd=fresh)
    assert res.returncode == 3, res.stdout + res.stderr
    assert "cut short" in res.stderr and "entry 3" in res.stderr, res.stderr
    data = json.loads(spectral("dr", "log", "verify", "--json", cwd=fresh).stdout)
    assert data["ok"] is False and "cut short" in data["cut_short"]


def test_a_protected_git_store_refuses_the_truncating_force_push(tmp_path: Path) -> None:
    remote = tmp_path / "evidence.git"
    store = bare_repo(remote, protected=True)
    write_history(workdir(tmp_path, "writer", store), datetime.now(UTC))
    pushed = force_push_back(tmp_path, remote, 2)
    assert pushed.returncode != 0 and "non-fast-forward" in pushed.stderr, pushed.stderr
    deleted = run(["git", "-C", str(tmp_path / "attacker"), "push", "-q", "origin",
                   ":refs/heads/main"], timeout=60, check=False)
    assert deleted.returncode != 0 and "deletion" in deleted.stderr, deleted.stderr
    fresh = workdir(tmp_path, "runner", store)
    res = spectral("dr", "log", "verify", cwd=fresh)
    assert res.returncode == 0 and "5 entries" in res.stdout, res.stdout + res.stderr


def test_a_ledger_whose_newest_entry_is_recent_is_not_cut_short() -> None:
    from spectral.drills.cadence import looks_cut_short
    from spectral.ledger.store import Entry

    now = datetime(2026, 12, 5, tzinfo=UTC)

    def entry(seq: int, days: float) -> Entry:
        return Entry(seq, now - timedelta(days=days), EntryKind.DRILL, "prod", {}, "", "")

    assert looks_cut_short([], now) is None
    assert looks_cut_short([entry(1, 90), entry(2, 29.9)], now) is None
    found = looks_cut_short([entry(1, 90), entry(2, 31)], now)
    assert found is not None and "entry 2" in found and "31 days" in found


def test_a_versioned_bucket_names_deleted_and_overwritten_entries(tmp_path: Path,
                                                                   s3: S3Server) -> None:
    from spectral.ledger.remote import StoreWentBack
    from spectral.ledger.store import GENESIS, _body, _digest

    bucket = "evidence-" + tmp_path.name[-8:].lower().replace("_", "-")
    client = s3.client()
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket,
                                 VersioningConfiguration={"Status": "Enabled"})
    store = (f'[environments.prod.evidence]\nstore = "s3"\nendpoint = "{s3.endpoint}"\n'
             f'bucket = "{bucket}"\nprefix = "spectral/prod"\npath_style = true\n'
             f'access_key_id = "env:S3_KEY"\nsecret_access_key = "env:S3_SECRET"\n'
             f'verify_tls = false\n')
    os.environ.update({"S3_KEY": s3.key_id, "S3_SECRET": s3.secret})
    writer = open_ledger(load_config(None, cwd=workdir(tmp_path, "w", store)), "prod")
    for i in range(3):
        writer.append(EntryKind.DRILL, "prod", {"i": i, "outcome": "pass"})
    assert open_ledger(load_config(None, cwd=workdir(tmp_path, "r0", store)),
                       "prod").verify() == []
    # entry 2 rewritten with a consistent hash, entry 3 deleted: the chain still verifies
    key = "spectral/prod/entries/{:012d}.json"
    first = json.loads(client.get_object(Bucket=bucket, Key=key.format(1))["Body"].read())
    second = json.loads(client.get_object(Bucket=bucket, Key=key.format(2))["Body"].read())
    second["data"]["outcome"] = "fail"
    second["prev"] = first["hash"] if first["hash"] else GENESIS
    second["hash"] = _digest(_body(second))
    client.put_object(Bucket=bucket, Key=key.format(2),
                      Body=json.dumps(second, sort_keys=True).encode())
    client.delete_object(Bucket=bucket, Key=key.format(3))
    fresh = workdir(tmp_path, "r1", store)
    with pytest.raises(StoreWentBack) as raised:
        open_ledger(load_config(None, cwd=fresh), "prod").entries()
    assert "entry 2" in str(raised.value) and "overwritten" in str(raised.value)
    assert "entry 3" in str(raised.value) and "deleted" in str(raised.value)
    res = spectral("dr", "log", "verify", cwd=workdir(tmp_path, "r2", store),
                   env={"S3_KEY": s3.key_id, "S3_SECRET": s3.secret})
    assert res.returncode == 3 and "entry 3" in res.stderr, res.stdout + res.stderr


# ---- 14: hole times are shown exactly ------------------------------------------------------
def test_a_hole_message_shows_the_boundary_exactly() -> None:
    from spectral.providers.base import RecoverableWindow, WalGap, WindowInterval
    from spectral.providers.local.targets import _in_hole

    end = datetime(2026, 12, 1, 10, 0, 0, 930412, tzinfo=UTC)
    iv = WindowInterval(end - timedelta(hours=1), "0/2000028", end, "0/3000060", "0/3000098",
                        ["b1"])
    window = RecoverableWindow(iv.start_time, iv.start_lsn, end, iv.end_lsn, 1,
                               [WalGap("000000010000000000000003", "000000010000000000000004",
                                       "000000010000000000000004", 1)], [iv], "0/5000000")
    message = _in_hole("--target-time 2026-12-01 10:30", window, iv, 16 << 20).message
    assert "10:00:00.930412" in message, message


# ---- 14: a killed `dr exit` is undone by the next run ---------------------------------------

def target_state(c: Cluster) -> tuple[set[str], set[str]]:
    """The target's schemas and roles (what an exit writes and its undo must take back)."""
    with connect(with_dbname(c.conninfo(), "app")) as conn:
        schemas = {r[0] for r in conn.execute(
            "select nspname from pg_namespace where nspname not like 'pg\\_%' "
            "and nspname <> 'information_schema'")}
        roles = {r[0] for r in conn.execute("select rolname from pg_roles "
                                            "where rolname not like 'pg\\_%'")}
    return schemas, roles


def kill_exit_while_it_writes(work: Path, target: Cluster, target_dsn: str) -> None:
    """Start `dr exit`; once its pre-data is in (core.bulk exists), take a lock on that table
    so the exit waits on it mid-restore (its data or post-data), then kill -9 its whole
    process group (the pg_restore and psql it runs too)."""
    import psycopg

    proc = subprocess.Popen([SPECTRAL, "dr", "exit", "--to", target_dsn, "--yes"], cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    app = with_dbname(target.conninfo(), "app")
    try:
        with connect(app) as watch, connect(app) as holder:
            watch.autocommit, holder.autocommit = True, False
            wait_until(lambda: watch.execute("select to_regclass('core.bulk')").fetchone()
                       != (None,), timeout=120, interval=0.005, max_interval=0.005,
                       what="the exit's pre-data")

            def locked() -> bool:
                try:
                    holder.execute("lock table core.bulk in access exclusive mode nowait")
                    return True
                except psycopg.errors.LockNotAvailable:
                    holder.rollback()
                    return False

            wait_until(locked, timeout=120, interval=0.005, max_interval=0.005,
                       what="the lock on core.bulk")
            wait_until(lambda: watch.execute(
                "select 1 from pg_stat_activity where usename = 'app' and "
                "wait_event_type = 'Lock'").fetchone(), timeout=120, what="the exit to wait")
            assert proc.poll() is None, "the exit finished before it could be killed"
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            holder.rollback()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def test_a_killed_exit_is_undone_by_the_next_run(work_dir: Path,
                                                 make_cluster: ClusterFactory) -> None:
    from spectral.refdb.migrate import migrate

    source = make_cluster()
    with source.connect() as conn:
        migrate(conn)
        conn.execute("insert into core.orgs (slug, name) values ('acme', 'Acme')")
        conn.execute("create table core.bulk (id bigint primary key, pad text not null)")
        conn.execute("insert into core.bulk select i, md5(i::text) from "
                     "generate_series(1, 200000) i")
    (work_dir / "spectral.toml").write_text(
        f'[environments.app]\nprovider = "local"\ndsn = "{source.conninfo()}"\n'
        f'schemas = ["core", "worlds", "platform"]\n')
    target, target_dsn = exit_target(make_cluster)
    before = target_state(target)
    kill_exit_while_it_writes(work_dir, target, target_dsn)
    half = target_state(target)
    assert "core" in half[0] and half != before             # it had written, half-way
    # another target: the half-written one cannot be reached, so say exactly how to undo it
    other, other_dsn = exit_target(make_cluster)
    untouched = target_state(other)
    res = spectral("dr", "exit", "--to", other_dsn, "--yes", cwd=work_dir)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "interrupted" in res.stderr and 'drop schema if exists "core" cascade' in \
        res.stderr and "psql" in res.stderr, res.stderr
    assert target_state(other) == untouched
    assert target_state(target) == half
    # the same target: the next run undoes what the killed one wrote, then moves and proves
    res = spectral("dr", "exit", "--to", target_dsn, "--yes", cwd=work_dir)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "proven" in res.stdout and "interrupted" in res.stderr, res.stdout + res.stderr
    assert target_state(target) == half                      # moved again, nothing extra
    assert not list((work_dir / ".spectral").glob("*/exit/*/dump")), "the dump was left"
    log = json.loads(spectral("dr", "log", "--kind", "exit", "--json", cwd=work_dir).stdout)
    assert log[0]["data"]["outcome"] == "proven"
    assert any('drop schema if exists "core" cascade' in u for u in log[0]["data"]["undone"])
