"""`spectral dr activate-pitr`: the runbook's four activation steps. Steps 1 and 2 are checked,
not assumed; step 3 edits the configuration keeping its comments and layout; step 4 makes a
functional drill due within 30 days. The activation is a ledger entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from spectral.config.models import ProviderKind, SpectralConfig
from spectral.confirm import AssumeNo, Confirmer
from spectral.durable import write_atomic
from spectral.errors import CheckFailed, ConfigError, RefusedError, UsageError
from spectral.ledger import EntryKind, Ledger
from spectral.localenv import LocalEnvironment
from spectral.providers.base import Verification
from spectral.providers.local.provider import LocalProvider
from spectral.providers.supabase.provider import SupabaseProvider


@dataclass
class ActivationStep:
    number: int
    text: str
    done: bool
    evidence: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Activation:
    environment: str
    steps: list[ActivationStep] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(s.done for s in self.steps)


def local_pitr_in_place(local: LocalEnvironment) -> tuple[bool, str, bool, str]:
    """(streaming, evidence, verified backup, evidence) for a local environment."""
    provider = LocalProvider(local)
    backups = [b for b in provider.backups() if b.verification is Verification.VERIFIED]
    streaming, stream_note = False, "the environment's server is not running"
    cluster = local.cluster() if local.exists() else None
    if cluster is not None and cluster.is_running():
        with cluster.connect() as conn:
            row = conn.execute("select sync_state from pg_stat_replication "
                               "where application_name = 'spectral_stream'").fetchone()
        streaming = row is not None
        stream_note = (f"pg_receivewal streaming ({row[0]})" if row
                       else "no WAL stream (spectral dr wal stream)")
    backup_note = (f"verified base backup {backups[-1].id}" if backups
                   else "no verified base backup (spectral dr backup)")
    return streaming, stream_note, bool(backups), backup_note


def set_posture(path: Path, env_name: str, posture: str) -> None:
    """Change one key, keeping every comment and the layout of the rest of the file."""
    doc = tomlkit.parse(path.read_text())
    envs = doc.get("environments")
    if envs is None or env_name not in envs:
        raise ConfigError(f"{path}: no [environments.{env_name}] table to update")
    envs[env_name]["posture"] = posture
    write_atomic(path, tomlkit.dumps(doc))


PAID_PLANS = ("pro", "team", "enterprise")


def supabase_pitr_in_place(sp: SupabaseProvider, addon: str | None, confirmer: Confirmer,
                           report: Callable[[str], None]) -> list[ActivationStep]:
    """Steps 1 and 2 through the Management API: the organisation's plan, then `pitr_enabled`;
    with `addon`, the PITR add-on is applied first (it is billed: only after confirmation)."""
    plan = sp.plan()
    on_pro = plan in PAID_PLANS
    steps = [ActivationStep(1, "Supabase project on Pro", on_pro,
                            f"organization plan {plan}" + ("" if on_pro else
                            ": upgrade it in the dashboard (Organization -> Billing)"))]
    _b, _w, flags = sp.backups()
    if not flags["pitr_enabled"] and addon is not None and on_pro:
        if not confirmer.confirm(f"Enable the {addon} PITR add-on on project {sp.ref}?",
                                 [f"PATCH billing/addons {{addon_type: pitr, addon_variant: "
                                  f"{addon}}}: the add-on is billed"]):
            raise RefusedError(f"the {addon} add-on was not confirmed; nothing was changed")
        sp.apply_pitr_addon(addon, confirmed=True)
        report(f"applied the {addon} add-on; reading the project's backups again")
        _b, _w, flags = sp.backups()
    variant = sp.pitr_addon()
    enabled = bool(flags["pitr_enabled"])
    steps.append(ActivationStep(2, "PITR enabled", enabled,
                                f"pitr_enabled {str(enabled).lower()}, add-on {variant or 'none'}"
                                + ("" if enabled else " (--pitr-addon pitr_7|pitr_14|pitr_28 "
                                   "applies it)")))
    return steps


def activate(cfg: SpectralConfig, env_name: str, local: LocalEnvironment | None,
             trigger: str, *, addon: str | None = None, confirmer: Confirmer = AssumeNo(),
             report: Callable[[str], None] = lambda _m: None) -> Activation:
    name, env = cfg.environment(env_name)
    if cfg.source is None:
        raise ConfigError("there is no configuration file to record the new tier in",
                          hint="spectral init writes one")
    result = Activation(name)
    if env.provider is ProviderKind.SUPABASE:
        from spectral.providers.supabase.open import supabase_provider

        result.steps += supabase_pitr_in_place(supabase_provider(cfg, env), addon, confirmer,
                                               report)
    else:
        if addon is not None:
            raise UsageError("--pitr-addon is for Supabase environments")
        assert local is not None
        streaming, stream_note, backed_up, backup_note = local_pitr_in_place(local)
        result.steps.append(ActivationStep(1, "daily base backups in place (the local Pro)",
                                           backed_up, backup_note))
        result.steps.append(ActivationStep(2, "PITR enabled: continuous WAL streaming",
                                           streaming, stream_note))
    if not all(s.done for s in result.steps):
        missing = [s.text for s in result.steps if not s.done]
        raise CheckFailed(f"not activating {name}: {'; '.join(missing)} not in place "
                          f"({'; '.join(s.evidence for s in result.steps if not s.done)})")
    set_posture(cfg.source, name, "pitr")
    result.steps.append(ActivationStep(3, "posture updated to Post-PITR", True,
                                       f"{cfg.source}: environments.{name}.posture = \"pitr\""))
    result.steps.append(ActivationStep(4, "functional restore drill due within 30 days", True,
                                       "spectral dr status shows it"))
    Ledger(cfg.state_dir(name) / "evidence").append(EntryKind.ACTIVATION, name, {
        "summary": f"PITR activated (trigger: {trigger})", "trigger": trigger,
        "steps": [s.to_json() for s in result.steps]})
    return result
