"""Snapshots: fingerprints stored in an environment's evidence store with their time and LSN,
so a restore made at time T is compared with the state at or just before T, not with today."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from spectral.verify.fingerprint import load, save


@dataclass(frozen=True)
class SnapshotRef:
    path: Path
    taken_at: datetime
    lsn: str


def folder(state_dir: Path) -> Path:
    return state_dir / "evidence" / "snapshots"


def store(state_dir: Path, doc: dict[str, Any]) -> Path:
    taken = datetime.fromisoformat(doc["taken_at"])
    lsn = doc["source"]["lsn"].replace("/", "-")
    path = folder(state_dir) / f"{taken.strftime('%Y%m%dT%H%M%S.%fZ')}_{lsn}.json"
    save(doc, path)
    return path


def record(state_dir: Path, environment: str, doc: dict[str, Any]) -> Path:
    """Store a snapshot and enter it in the environment's ledger (time, LSN, schema checksums),
    so drills, cadence and the runbook can find it."""
    from spectral.ledger import EntryKind, Ledger

    path = store(state_dir, doc)
    Ledger(state_dir / "evidence").append(EntryKind.SNAPSHOT, environment, {
        "path": str(path), "taken_at": doc["taken_at"], "lsn": doc["source"]["lsn"],
        "schemas": {k: v["checksum"] for k, v in doc["schemas"].items()}})
    return path


def listing(state_dir: Path) -> list[SnapshotRef]:
    refs = []
    for path in sorted(folder(state_dir).glob("*.json")):
        stamp, _, lsn = path.stem.partition("_")
        try:
            taken = datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
        except ValueError:
            continue
        refs.append(SnapshotRef(path, taken, lsn.replace("-", "/")))
    return refs


def at_or_before(state_dir: Path, when: datetime) -> dict[str, Any] | None:
    """The newest snapshot taken at or before `when` (loaded and checked), or None."""
    best = None
    for ref in listing(state_dir):
        doc = load(ref.path)
        if datetime.fromisoformat(doc["taken_at"]) <= when:
            best = doc
    return best
