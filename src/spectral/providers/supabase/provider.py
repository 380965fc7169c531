"""Backups, the recoverable window and in-place PITR of a Supabase project."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from spectral.errors import CouldNotVerify, RefusedError, UsageError
from spectral.providers.base import RecoverableWindow
from spectral.providers.supabase.client import ManagementClient
from spectral.verify.compare import Outcome, compare
from spectral.verify.fingerprint import Options, take
from spectral.waits import WaitTimeout, wait_until

Report = Callable[[str], None]


@dataclass(frozen=True)
class SupabaseBackup:
    id: Any
    physical: bool
    status: str
    inserted_at: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class SupabaseProvider:
    def __init__(self, client: ManagementClient, project_ref: str, dsn: str,
                 schemas: tuple[str, ...]) -> None:
        self.client, self.ref, self.dsn, self.schemas = client, project_ref, dsn, schemas

    def _backups_doc(self) -> dict[str, Any]:
        doc = self.client.get(f"/projects/{self.ref}/database/backups")
        assert isinstance(doc, dict)
        return doc

    def backups(self) -> tuple[list[SupabaseBackup], RecoverableWindow, dict[str, Any]]:
        doc = self._backups_doc()
        backups = [SupabaseBackup(b.get("id"), bool(b.get("is_physical_backup")),
                                  str(b.get("status")), str(b.get("inserted_at")))
                   for b in doc.get("backups", [])]
        return backups, self._window(doc), {"pitr_enabled": bool(doc.get("pitr_enabled")),
                                            "walg_enabled": bool(doc.get("walg_enabled"))}

    @staticmethod
    def _window(doc: dict[str, Any]) -> RecoverableWindow:
        data = doc.get("physical_backup_data") or {}
        lo, hi = data.get("earliest_physical_backup_date_unix"), \
            data.get("latest_physical_backup_date_unix")
        if lo is None or hi is None:
            return RecoverableWindow(None, None, None, None, None)
        return RecoverableWindow(datetime.fromtimestamp(lo, UTC), "-",
                                 datetime.fromtimestamp(hi, UTC), "-", None)

    def pitr_in_place(self, when: datetime, *, confirmed: bool, report: Report,
                      timeout: float = 3600) -> dict[str, Any]:
        """Check the target is in the window, snapshot first, restore, wait for health, verify."""
        if not confirmed:
            raise RefusedError("an in-place PITR rewinds the production database; it needs "
                               "--yes (and belongs in a playbook run)")
        doc = self._backups_doc()
        path = f"/projects/{self.ref}/database/backups/restore-pitr"
        body = {"recovery_time_target_unix": int(when.timestamp())}
        if not doc.get("pitr_enabled"):
            # there is no window to check: the API refuses, and its message is the clearest
            self.client.post(path, body)
        window = self._window(doc)
        if window.empty or not (window.earliest_time and window.latest_time
                                and window.earliest_time <= when <= window.latest_time):
            raise UsageError(f"{when.isoformat()} is outside the recoverable window: "
                             f"{window.describe()}")
        report("taking a fingerprint snapshot before the restore")
        before = take(self.dsn, Options(self.schemas))
        report(f"requesting PITR to {when.isoformat()}")
        self.client.post(path, body)
        started = time.monotonic()

        def healthy() -> bool:
            status = str(self.client.get(f"/projects/{self.ref}").get("status"))
            report(f"project status {status} ({time.monotonic() - started:.0f} s)")
            if status == "RESTORE_FAILED":
                raise CouldNotVerify("Supabase reports RESTORE_FAILED")
            if status != "ACTIVE_HEALTHY":
                return False
            health = self.client.get(f"/projects/{self.ref}/health", params={"services": "db"})
            return all(h.get("healthy") for h in health if h.get("name") == "db")

        try:
            wait_until(healthy, timeout=timeout, interval=1.0, max_interval=10.0,
                       what="the restored project to be healthy")
        except WaitTimeout:
            raise CouldNotVerify(f"the project was not healthy {timeout:.0f} s after the "
                                 f"restore request") from None
        after = take(self.dsn, Options(self.schemas))
        cmp = compare(before, after)
        return {"project": self.ref, "target": when.isoformat(),
                "seconds": round(time.monotonic() - started, 1),
                "schemas_match_snapshot": all(s.outcome is Outcome.MATCH for s in cmp.schemas),
                "tables": {t.name: {"before": t.rows[0], "after": t.rows[1]}
                           for t in cmp.tables}}
