"""The evidence ledger: an append-only, hash-chained JSON-lines file of drills, tabletops,
incidents, activation events and snapshots."""

from spectral.ledger.store import Entry, EntryKind, Ledger, LedgerProblem

__all__ = ["Entry", "EntryKind", "Ledger", "LedgerProblem"]
