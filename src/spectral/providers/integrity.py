"""A restored copy's physical checks, as the object its provider hands out with the copy
(`Copy.integrity`; None: the provider has no way to check its copies physically, as with a
Supabase project, which has no data directory to read). The drill asks the object; it never
asks which provider made the copy (drills/integrity.py turns the reports into checks)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class IntegrityState(StrEnum):
    SOUND = "sound"                  # checked, nothing found
    DAMAGED = "damaged"              # checked, damage found (named in `findings`)
    NOT_CHECKED = "not_checked"      # this check does not apply (`detail` says why)
    COULD_NOT_CHECK = "could_not_check"   # it applies, but did not run to the end


@dataclass(frozen=True)
class IntegrityReport:
    state: IntegrityState
    detail: str
    findings: tuple[str, ...] = ()   # relation and block of each damaged place; log lines
    notes: tuple[str, ...] = ()      # shown, not damage (where the WAL ended)


class CopyIntegrity(Protocol):
    """Physical checks of one restored copy, in the order a drill runs them."""

    def recovery_log(self) -> IntegrityReport:
        """The copy's server log up to the end of recovery: warnings and errors are damage."""

    def amcheck(self, *, thorough: bool) -> IntegrityReport:
        """pg_amcheck on the running copy: B-tree indexes and heap tables of every database
        (`thorough`: --heapallindexed --parent-check)."""

    def checksums(self) -> IntegrityReport:
        """Every block's checksum (pg_checksums --check) where data checksums are on: stops
        the copy cleanly first, so it comes last (the copy is torn down after it)."""
