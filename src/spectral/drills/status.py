"""`spectral dr status`: the one screen an on-call engineer opens, and the dead-man's switch a
cron job runs (exit 1 when anything is overdue), with the same figures for Prometheus
(drills/metrics.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spectral.config.models import EnvironmentConfig, Posture
from spectral.drills.cadence import (
    CadenceItem,
    ItemState,
    cadence,
    changed_since,
    last_drill_schemas,
)
from spectral.environment import Environment
from spectral.ledger import EntryKind, Ledger, payloads
from spectral.providers.base import Capability

BACKUP_MAX_AGE_S = 26 * 3600     # "managed daily backups", with two hours of slack


@dataclass
class Facts:
    """What the status needs from wherever the environment lives."""

    ledger: Ledger
    live: dict[str, str | None] | None         # schema checksums now (None: not reachable)
    newest_backup: tuple[str, datetime] | None
    wal: dict[str, Any] | None


def _schemas_of(conninfo: str, env: EnvironmentConfig) -> dict[str, str | None]:
    from spectral.pg.conn import connect
    from spectral.verify.catalog import describe_schema
    from spectral.verify.document import SchemaEntry

    with connect(conninfo) as conn:
        conn.execute("set search_path = ''")
        return {s: SchemaEntry.of(describe_schema(conn, s)).checksum for s in env.schemas}


def facts(environment: Environment) -> Facts:
    """What the provider says about backups and WAL shipping, and the live schemas when the
    database is reachable without starting anything."""
    from spectral.errors import SpectralError

    provider, env = environment.provider, environment.config
    dsn = provider.running_source()
    try:
        live = _schemas_of(dsn, env) if dsn else None
    except SpectralError:
        live = None
    usable = sorted((b for b in provider.backups() if b.usable), key=lambda b: b.stop_time)
    newest = (usable[-1].id, usable[-1].stop_time) if usable else None
    if Capability.ON_DEMAND_BACKUP not in provider.capabilities and provider.pitr_enabled():
        # a provider that takes its own backups may stop taking daily ones once PITR is on
        # (Supabase does): then the window's end says how fresh the restorable point is
        end = provider.window().latest_time
        if end is not None and (newest is None or end > newest[1]):
            newest = ("the PITR window's end", end)
    return Facts(environment.ledger, live, newest, provider.archive_status())


def collect(name: str, env: EnvironmentConfig, facts: Facts,
            now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    ledger = facts.ledger
    entries = ledger.entries()
    live = facts.live
    changed = None if live is None else changed_since(last_drill_schemas(entries), live)
    items = cadence(env, entries, now, changed)
    drills = [e for e in entries if e.kind is EntryKind.DRILL]
    last_entry = max(drills, key=lambda e: e.seq) if drills else None
    last = payloads.drill(last_entry) if last_entry else None
    newest = facts.newest_backup
    backup_age = (now - newest[1]).total_seconds() if newest else None
    backup_required = env.posture is not Posture.ALPHA
    backup_state = ItemState.NOT_REQUIRED if not backup_required else (
        ItemState.OVERDUE if backup_age is None or backup_age > BACKUP_MAX_AGE_S else ItemState.OK)
    wal = facts.wal
    problems = [i.name for i in items if i.state is ItemState.OVERDUE]
    if backup_state is ItemState.OVERDUE:
        problems.append("Daily backup")
    ledger_problems = ledger.verify()
    if ledger_problems:
        problems.append("Ledger integrity")
    return {
        "environment": name, "posture": env.posture.value, "at": now.isoformat(),
        "targets": {"rpo_seconds": env.rpo_seconds, "rto_seconds": env.rto_seconds},
        "measured": {"rpo_seconds": last.rpo_seconds if last else None,
                     "rto_seconds": last.rto_seconds if last else None},
        "last_drill": None if last is None or last_entry is None else {
            "at": last_entry.at.isoformat(), "type": last.type,
            "outcome": last.outcome, "error": last.error},
        "cadence": [i.to_json() for i in items],
        "backup": {"newest": newest[0] if newest else None, "age_seconds": backup_age,
                   "state": backup_state.value},
        "wal": wal,
        "ledger": {"entries": len(entries), "intact": not ledger_problems,
                   "head": ledger.head_hash()},
        "overdue": problems,
        "next_steps": [f"{p}: {START[p]}" for p in problems if p in START],
    }


# The one command that starts (or repairs) each overdue item. A new environment starts with the
# tabletop review (and, above alpha, a drill and a backup) overdue: the dead-man's switch is armed
# from the first day, so `dr status` exits 1 until they have been done once.
START = {
    "Functional restore drill": "spectral dr drill functional",
    "Tabletop review": "spectral dr tabletop",
    "Post-migration drill": "spectral dr drill post-migration",
    "Daily backup": "spectral dr backup (on Supabase: the project's own daily backups or PITR)",
    "Ledger integrity": "spectral dr log verify (it names the damage)",
}


def describe(item: CadenceItem) -> str:
    return item.name
