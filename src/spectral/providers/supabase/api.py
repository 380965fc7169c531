"""The Management API calls the Supabase provider makes, each in Supabase's own terms:
https://api.supabase.com/api/v1 (see tests/supabase-api/ for the recorded answers)."""

from __future__ import annotations

import time
from typing import Any

from spectral.errors import CouldNotVerify, RefusedError, UsageError
from spectral.providers.base import Report
from spectral.providers.supabase.client import ApiError, ManagementClient
from spectral.verify.by_query import StatementFailed
from spectral.waits import WaitTimeout, wait_until

# Project statuses (the spec's enum) a restore or a new project does not come back from by
# itself; ACTIVE_HEALTHY is the one good end, and COMING_UP, RESTORING, UPGRADING, RESTARTING,
# RESIZING and UNKNOWN are on the way to it
FAILED_STATUSES = {"RESTORE_FAILED", "INIT_FAILED", "REMOVED", "GOING_DOWN", "INACTIVE",
                   "PAUSE_FAILED", "PAUSING", "ACTIVE_UNHEALTHY"}
PITR_VARIANTS = ("pitr_7", "pitr_14", "pitr_28")


class SupabaseApi:
    def __init__(self, client: ManagementClient, project_ref: str, dsn: str) -> None:
        self.client, self.ref, self.dsn = client, project_ref, dsn

    def backups_doc(self) -> dict[str, Any]:
        doc = self.client.get(f"/projects/{self.ref}/database/backups")
        assert isinstance(doc, dict)
        return doc

    # ---- projects -----------------------------------------------------------------------
    def project(self, ref: str) -> dict[str, Any]:
        doc = self.client.get(f"/projects/{ref}")
        assert isinstance(doc, dict)
        return doc

    def project_refs(self) -> set[str]:
        return {str(p.get("ref") or p.get("id")) for p in self.client.get("/projects") or []}

    def wait_healthy(self, ref: str, *, timeout: float, report: Report,
                     what: str = "project") -> None:
        """Poll the project's status until ACTIVE_HEALTHY and its database service's status is
        ACTIVE_HEALTHY too (`healthy` is deprecated in the spec; no db entry is not healthy)."""
        started = time.monotonic()
        last: list[str] = ["no answer yet"]

        def healthy() -> bool:
            status = str(self.project(ref).get("status"))
            if status != last[0]:
                report(f"{what} {ref}: {status} ({time.monotonic() - started:.0f} s)")
                last[0] = status
            if status in FAILED_STATUSES:
                raise CouldNotVerify(f"Supabase reports {status} for {what} {ref}")
            if status != "ACTIVE_HEALTHY":
                return False
            health = self.client.get(f"/projects/{ref}/health", params={"services": "db"})
            db = [h for h in health or [] if h.get("name") == "db"]
            last[0] = f"ACTIVE_HEALTHY, database {db[0].get('status') if db else 'not reported'}"
            return bool(db) and all(h.get("status") == "ACTIVE_HEALTHY" for h in db)

        try:
            wait_until(healthy, timeout=timeout, interval=1.0, max_interval=10.0,
                       what=f"{what} {ref} to be healthy")
        except WaitTimeout:
            raise CouldNotVerify(f"{what} {ref} was not healthy after {timeout:.0f} s (last "
                                 f"status: {last[0]})") from None

    def read_only_query(self, ref: str, query: str) -> list[dict[str, Any]]:
        """One statement through POST /v1/projects/{ref}/database/query/read-only (run as
        supabase_read_only_user); PostgreSQL's refusal of it is StatementFailed."""
        try:
            rows = self.client.post(f"/projects/{ref}/database/query/read-only",
                                    {"query": query})
        except ApiError as exc:
            if exc.status in (400, 422, 500):
                raise StatementFailed(f"project {ref}: the read-only query failed: "
                                      f"{exc.api_message}") from None
            raise
        if not isinstance(rows, list):
            raise CouldNotVerify(f"project {ref}: the read-only query answered "
                                 f"{type(rows).__name__}, not rows")
        return rows

    def delete_project(self, ref: str) -> None:
        if ref == self.ref:
            raise RefusedError(f"refusing to delete {ref}: it is the environment's own project")
        self.client.delete(f"/projects/{ref}")

    # ---- branches with data -------------------------------------------------------------
    def create_data_branch(self, name: str) -> dict[str, Any]:
        doc = self.client.post(f"/projects/{self.ref}/branches",
                               {"branch_name": name, "with_data": True})
        assert isinstance(doc, dict)
        return doc

    def delete_branch(self, branch_ref: str) -> None:
        """By the branch's project ref (the id form is deprecated)."""
        if branch_ref == self.ref:
            raise RefusedError(f"refusing to delete {branch_ref}: it is the environment's own "
                               f"project")
        self.client.delete(f"/branches/{branch_ref}")

    # ---- plan, entitlements and the PITR add-on -----------------------------------------
    def organization(self) -> str:
        project = self.project(self.ref)
        org = project.get("organization_slug") or project.get("organization_id")
        if not org:
            raise CouldNotVerify(f"project {self.ref} names no organization")
        return str(org)

    def entitlements(self) -> dict[str, dict[str, Any]] | None:
        """The organisation's entitlements by feature key ({"has_access", "config"}); None
        when they cannot be read (an older token or API): callers then go ahead and let the
        API say no."""
        try:
            doc = self.client.get(f"/organizations/{self.organization()}/entitlements")
        except ApiError:
            return None
        return {str(e.get("feature", {}).get("key")): {"has_access": bool(e.get("hasAccess")),
                                                        "config": e.get("config") or {}}
                for e in (doc or {}).get("entitlements", [])}

    def entitled(self, key: str, what: str, instead: str) -> None:
        """Refuse, in one line and before any request, what the plan does not allow."""
        found = self.entitlements()
        if found is None or key not in found:
            return
        if not found[key]["has_access"]:
            raise UsageError(f"the organisation's plan does not allow {what} (entitlement "
                             f"{key})", hint=instead)

    def plan(self) -> str:
        """The organisation's plan (free, pro, team, enterprise, platform; optional in the
        answer: "unknown" then)."""
        org = self.organization()
        return str(self.client.get(f"/organizations/{org}").get("plan") or "unknown")

    def pitr_addon(self) -> str | None:
        """The selected PITR add-on variant (pitr_7, pitr_14, pitr_28), if any."""
        doc = self.client.get(f"/projects/{self.ref}/billing/addons") or {}
        for addon in doc.get("selected_addons", []):
            if addon.get("type") == "pitr":
                return str((addon.get("variant") or {}).get("id"))
        return None

    def apply_pitr_addon(self, variant: str, *, confirmed: bool) -> None:
        if variant not in PITR_VARIANTS:
            raise UsageError(f"PITR add-on {variant!r}: expected one of "
                             f"{', '.join(PITR_VARIANTS)}")
        if not confirmed:
            raise RefusedError(f"enabling the {variant} add-on changes the bill; not confirmed")
        self.client.patch(f"/projects/{self.ref}/billing/addons",
                          {"addon_type": "pitr", "addon_variant": variant})
