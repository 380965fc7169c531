"""Snapshots: fingerprints stored in an environment's evidence store with their time and LSN,
so a restore made at time T is compared with the state at or just before T, not with today."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from spectral.verify.document import Fingerprint
from spectral.verify.fingerprint import load, save

if TYPE_CHECKING:
    from spectral.ledger import Ledger


@dataclass(frozen=True)
class SnapshotRef:
    path: Path
    taken_at: datetime
    lsn: str


def folder(evidence_dir: Path) -> Path:
    return evidence_dir / "snapshots"


def store(evidence_dir: Path, doc: Fingerprint) -> Path:
    taken = datetime.fromisoformat(doc.taken_at)
    lsn = doc.source.lsn.replace("/", "-")
    path = folder(evidence_dir) / f"{taken.strftime('%Y%m%dT%H%M%S.%fZ')}_{lsn}.json"
    save(doc, path)
    return path


def record(ledger: Ledger, environment: str, doc: Fingerprint) -> Path:
    """Store a snapshot next to the environment's ledger (in the same store: published with
    the entry that names it) and enter it there (time, LSN, schema checksums), so drills,
    cadence and the runbook can find it."""
    from spectral.ledger.payloads import SnapshotRecord

    ledger.sync()
    path = store(ledger.dir, doc)
    done = SnapshotRecord(f"snapshots/{path.name}", doc.taken_at, doc.source.lsn,
                          {k: v.checksum for k, v in doc.schemas.items()})
    ledger.record(environment, done)
    return path


def listing(evidence_dir: Path) -> list[SnapshotRef]:
    refs = []
    for path in sorted(folder(evidence_dir).glob("*.json")):
        stamp, _, lsn = path.stem.partition("_")
        try:
            taken = datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
        except ValueError:
            continue
        refs.append(SnapshotRef(path, taken, lsn.replace("-", "/")))
    return refs


def at_or_before(ledger: Ledger, when: datetime) -> Fingerprint | None:
    """The newest snapshot taken at or before `when` (loaded and checked), or None."""
    ledger.sync()
    best = None
    for ref in listing(ledger.dir):
        doc = load(ref.path)
        if datetime.fromisoformat(doc.taken_at) <= when:
            best = doc
    return best
