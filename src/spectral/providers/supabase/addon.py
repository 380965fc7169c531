"""The runbook's PITR activation steps 1 and 2 on Supabase, through the Management API: the
organisation's plan, then `pitr_enabled`; with `addon`, the PITR add-on is applied first (it is
billed: only after confirmation)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from spectral.confirm import Operator
from spectral.errors import RefusedError, UsageError
from spectral.providers.base import ReadinessItem, Report

if TYPE_CHECKING:
    from spectral.providers.supabase.provider import SupabaseProvider

PAID_PLANS = ("pro", "team", "enterprise", "platform")   # the spec's enum, less "free"


def readiness(sp: SupabaseProvider, addon: str | None, operator: Operator,
              report: Report) -> list[ReadinessItem]:
    plan = sp.plan()
    on_pro = plan in PAID_PLANS
    items = [ReadinessItem("Supabase project on Pro", on_pro,
                           f"organization plan {plan}" + ("" if on_pro else
                           ": upgrade it in the dashboard (Organization -> Billing)"))]
    enabled = sp.pitr_enabled()
    if not enabled and addon is not None and on_pro:
        _variant_entitled(sp, addon)
        if not operator.confirm(f"Enable the {addon} PITR add-on on project {sp.ref}?",
                                [f"PATCH billing/addons {{addon_type: pitr, addon_variant: "
                                 f"{addon}}}: the add-on is billed"]):
            raise RefusedError(f"the {addon} add-on was not confirmed; nothing was changed")
        sp.apply_pitr_addon(addon, confirmed=True)
        report(f"applied the {addon} add-on; reading the project's backups again")
        enabled = sp.pitr_enabled()
    variant = sp.pitr_addon()
    items.append(ReadinessItem("PITR enabled", enabled,
                               f"pitr_enabled {str(enabled).lower()}, add-on {variant or 'none'}"
                               + ("" if enabled else " (--pitr-addon pitr_7|pitr_14|pitr_28 "
                                  "applies it)")))
    return items


def _variant_entitled(sp: SupabaseProvider, addon: str) -> None:
    """The plan's `pitr.available_variants` decide before the add-on is requested."""
    found = (sp.entitlements() or {}).get("pitr.available_variants")
    if found is None:
        return
    variants = found["config"].get("set") or []
    if not found["has_access"] or addon not in variants:
        raise UsageError(f"the organisation's plan does not offer the {addon} PITR add-on "
                         f"(entitlement pitr.available_variants: {', '.join(variants) or 'none'})")
