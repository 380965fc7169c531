"""`spectral dr checklist first-partner --partner P`: the runbook's onboarding checklist, each
item checked against the real thing."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from spectral.config.models import Posture
from spectral.confirm import AssumeNo
from spectral.environment import Environment
from spectral.errors import SpectralError
from spectral.ledger import EntryKind, Ledger, payloads
from spectral.pg.conn import connect
from spectral.rules import hook
from spectral.rules.export import export
from spectral.rules.importer import load, read_folder


@dataclass
class Item:
    text: str
    done: bool
    evidence: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def pitr_active(environment: Environment) -> Item:
    env = environment.config
    items = environment.provider.pitr_readiness(AssumeNo(), lambda _m: None)
    done = env.posture is Posture.PITR and all(i.done for i in items)
    return Item("Supabase Pro + PITR active", done, f"posture {env.posture.value}; "
                + "; ".join(i.evidence for i in items))


def export_round_trip(conninfo: str, partner: str) -> Item:
    """Export to a scratch folder, validate it, and import it inside a transaction that is
    rolled back: the real schema accepts it, nothing changes."""
    text = "spectral db export-rules works for the partner corpus (round trip)"
    try:
        with tempfile.TemporaryDirectory(prefix="spectral-roundtrip-") as tmp, \
                connect(conninfo, autocommit=False) as conn:
            result = export(conn, [partner], Path(tmp))[0]
            conn.rollback()
            loaded = read_folder(Path(tmp), partner)
            with conn.transaction(force_rollback=True):
                counts = load(conn, loaded, replace=True)
    except SpectralError as exc:
        return Item(text, False, exc.message)
    if result.rules == 0:
        return Item(text, False, f"{partner} has no partner-owned rules to export yet")
    return Item(text, True, f"{result.rules} rules exported, validated and imported (rolled "
                            f"back): {counts['rules']} rules, {counts['references']} references")


def readme_and_hook(conninfo: str, out: Path, partner: str) -> list[Item]:
    readme = out / partner / "README.md"
    text = readme.read_text() if readme.exists() else ""
    needs = {"partner": partner in text, "onboarding date": "Onboarding date" in text,
             "regeneration procedure": "import-rules" in text}
    missing = [k for k, ok in needs.items() if not ok]
    items = [Item(f"data/rules/{partner}/ with a README (partner, onboarding date, regeneration "
                  f"procedure)", readme.exists() and not missing,
                  f"{readme}: " + ("complete" if readme.exists() and not missing else
                                   ("missing" if not readme.exists() else
                                    f"does not name the {', '.join(missing)}")))]
    with connect(conninfo) as conn:
        info = hook.status(conn)
    items.append(Item("a hook re-exports on mutation", info["installed"],
                      "rules hook installed on every rule table" if info["installed"] else
                      "spectral db rules-hook install (and run spectral db watch-rules)"))
    return items


def recent_drill(ledger: Ledger, partner: str, now: datetime) -> Item:
    text = "functional drill within 30 days using their corpus"
    drills = [e for e in ledger.entries() if e.kind is EntryKind.DRILL
              and (d := payloads.drill(e)).type == "functional" and d.outcome == "pass"
              and e.at >= now - timedelta(days=30)]
    with_corpus = [e for e in drills if partner in payloads.drill(e).partner_corpora]
    if with_corpus:
        e = with_corpus[-1]
        return Item(text, True, f"ledger #{e.seq}: PASS on {e.at.date()}, restore contained "
                                f"{partner}'s corpus")
    return Item(text, False, "no passing functional drill in the last 30 days whose restore "
                             f"contained {partner}'s corpus ({len(drills)} without it)")


def first_partner(environment: Environment, conninfo: str, partner: str, out: Path,
                  now: datetime | None = None) -> list[Item]:
    now = now or datetime.now(UTC)
    return [pitr_active(environment), export_round_trip(conninfo, partner),
            *readme_and_hook(conninfo, out, partner),
            recent_drill(environment.ledger, partner, now), exit_planned(environment, conninfo)]


def exit_planned(environment: Environment, conninfo: str) -> Item:
    """The provider-failure path is ready: every dependency of the protected schemas on what a
    PostgreSQL elsewhere lacks has a plan (against exit_target when it is configured)."""
    from spectral.exit.portability import Plan, assess
    from spectral.exit.where import resolve_exit_target

    text = "provider exit planned: every dependency has a plan (spectral dr portability)"
    target = environment.config.exit_target
    try:
        with connect(conninfo) as src:
            src.autocommit = True
            if target:
                with connect(resolve_exit_target(environment.spectral, target)) as tgt:
                    tgt.autocommit = True
                    report = assess(src, tuple(environment.config.schemas), tgt)
            else:
                report = assess(src, tuple(environment.config.schemas))
    except SpectralError as exc:
        return Item(text, False, exc.message)
    shims = [i.name for i in report.items if i.plan is Plan.SHIM]
    where = (f"against PostgreSQL {report.target.major}" if report.target
             else "without a target (set exit_target to check availability)")
    if report.refusals:
        return Item(text, False, f"{where}: no plan for " + ", ".join(
            f"{i.kind} {i.name}" for i in report.refusals))
    return Item(text, True, f"{where}: {len(report.items)} item(s), shims: "
                            f"{', '.join(shims) or 'none'}")
