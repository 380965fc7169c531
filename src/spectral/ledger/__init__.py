"""The evidence ledger: an append-only, hash-chained JSON-lines file of drills, tabletops,
incidents, activation events and snapshots.

The names below load on first use: the configuration imports ledger.settings, and a command
that never opens its ledger (a fingerprint, a compare) should not pay for the store and its
signing library."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spectral.ledger.store import Entry, EntryKind, Ledger, LedgerProblem

__all__ = ["Entry", "EntryKind", "Ledger", "LedgerProblem"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from spectral.ledger import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
