"""The Supabase provider against Supabase's own recorded answers (and answers in the spec's
shapes where nothing was recorded): each mismatch between our reading of the API and the real
one (issue 16) has a test here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from spectral.confirm import AssumeNo, AssumeYes
from spectral.errors import CheckFailed, CouldNotVerify
from spectral.providers.base import Copy
from spectral.providers.supabase.client import ManagementClient
from spectral.providers.supabase.copies import ProjectCopy
from spectral.providers.supabase.provider import SupabaseProvider
from spectral.recovery_target import TimeTarget
from supabase_replay import REF, TOKEN, Replay, ok, recorded

BASE = "http://replay.test/v1"
BACKUPS = f"/v1/projects/{REF}/database/backups"
PROJECT = f"/v1/projects/{REF}"
RESTORE = f"/v1/projects/{REF}/database/backups/restore-pitr"


def provider(replay: Replay, sleeps: list[float] | None = None) -> SupabaseProvider:
    client = ManagementClient(TOKEN, BASE, transport=replay,
                              sleep=(sleeps.append if sleeps is not None else lambda _s: None))
    return SupabaseProvider(client, REF, f"host=db.{REF}.supabase.co dbname=postgres", ("public",))


def test_a_project_without_pitr_or_backups(tmp_path: Path) -> None:
    """Recorded: `backups: []`, `physical_backup_data: {}`."""
    sp = provider(Replay().serve_recorded("GET", BACKUPS))
    assert sp.backups() == [] and sp.window().empty and sp.pitr_enabled() is False


def test_pitr_not_enabled_is_refused_before_any_restore_request() -> None:
    replay = Replay().serve_recorded("GET", BACKUPS).serve_recorded("POST", RESTORE)
    sp = provider(replay)
    with pytest.raises(CheckFailed, match=r"PITR is not enabled for this project\."):
        sp.restore_in_place(TimeTarget(datetime.now(UTC)), confirmed=True)
    assert ("POST", RESTORE) not in replay.requests
    with pytest.raises(Exception, match=r"400 .*PITR is not enabled"):   # and if sent: the 400
        sp.client.post(RESTORE.removeprefix("/v1"), {"recovery_time_target_unix": 1})
    assert replay.invalid == []


def test_backup_times_without_an_offset_are_utc() -> None:
    """The CLI's own tests show `inserted_at` as "2026-02-08 16:44:07" (the spec: a string)."""
    body = {"region": "us-east-1", "pitr_enabled": False, "walg_enabled": True,
            "backups": [{"is_physical_backup": True, "status": "COMPLETED",
                         "inserted_at": "2026-02-08 16:44:07"}], "physical_backup_data": {}}
    sp = provider(Replay().serve("GET", BACKUPS, ok(body)))
    (backup,) = sp.backups()
    assert backup.stop_time == datetime(2026, 2, 8, 16, 44, 7, tzinfo=UTC) and backup.usable
    assert datetime.now(UTC) - backup.stop_time > timedelta(0)     # comparable: no TypeError


def test_health_is_read_from_status_and_an_empty_answer_is_not_healthy() -> None:
    project = recorded("GET", PROJECT)
    health = f"/v1/projects/{REF}/health"
    sp = provider(Replay().serve("GET", PROJECT, project).serve(
        "GET", health, ok([{"name": "db", "status": "COMING_UP"}]),
        ok([{"name": "db", "status": "ACTIVE_HEALTHY"}])))
    sp.wait_healthy(REF, timeout=30, report=lambda _m: None)       # COMING_UP, then healthy
    empty = provider(Replay().serve("GET", PROJECT, project).serve("GET", health, ok([])))
    with pytest.raises(CouldNotVerify, match="database not reported"):
        empty.wait_healthy(REF, timeout=0.5, report=lambda _m: None)


@pytest.mark.parametrize("status", ["INACTIVE", "PAUSE_FAILED", "ACTIVE_UNHEALTHY",
                                    "RESTORE_FAILED"])
def test_failure_statuses_end_the_wait_at_once(status: str) -> None:
    project = recorded("GET", PROJECT)
    project["body"]["status"] = status
    sp = provider(Replay().serve("GET", PROJECT, project))
    with pytest.raises(CouldNotVerify, match=f"Supabase reports {status}"):
        sp.wait_healthy(REF, timeout=3600, report=lambda _m: None)


def test_the_plan_is_read_by_organisation_slug_and_platform_is_paid() -> None:
    replay = Replay().serve_recorded("GET", PROJECT).serve(
        "GET", f"/v1/organizations/{REF}",
        ok({"id": "x", "name": "Org", "plan": "platform", "opt_in_tags": [],
            "allowed_release_channels": ["ga"]})).serve_recorded("GET", BACKUPS).serve(
        "GET", f"/v1/projects/{REF}/billing/addons",
        ok({"selected_addons": [], "available_addons": []}))
    sp = provider(replay)
    items = sp.pitr_readiness(AssumeNo(), lambda _m: None)
    assert items[0].done and "platform" in items[0].evidence
    assert ("GET", f"/v1/organizations/{REF}") in replay.requests
    assert replay.invalid == []


def test_a_branch_is_deleted_by_its_project_ref() -> None:
    """Recorded: `DELETE /v1/branches/{ref}` with the branch's project ref."""
    branch = recorded("POST", f"/v1/projects/{REF}/branches")["body"]
    ref = branch["project_ref"]
    replay = Replay().serve("GET", f"/v1/projects/{ref}", ok({"ref": ref, "status":
                                                                "ACTIVE_HEALTHY"})).serve(
        "DELETE", f"/v1/branches/{ref}", recorded("DELETE", f"/v1/branches/{REF}"))
    copy = Copy(ref, "", f"branch {branch['id']}", None, "branch",
                ProjectCopy(ref, branch["id"]))
    provider(replay).remove_copy(copy, AssumeYes(), lambda _m: None)
    assert ("DELETE", f"/v1/branches/{ref}") in replay.requests
    assert not any(path.endswith(branch["id"]) for _m, path in replay.requests)
    assert replay.invalid == []


def test_the_servers_rate_limit_headers_are_honoured() -> None:
    spent = ok({"region": "x", "pitr_enabled": False, "backups": [],
                "physical_backup_data": {}}, **{"x-ratelimit-limit": "60",
                                               "x-ratelimit-remaining": "0",
                                               "x-ratelimit-reset": "7"})
    sleeps: list[float] = []
    sp = provider(Replay().serve("GET", BACKUPS, spent), sleeps)
    sp.backups()
    assert sp.client.limit == 60                # the server's limit replaces ours
    sp.backups()
    assert sleeps and 6.0 <= sleeps[0] <= 7.0   # waited for the reset the server named


def test_every_recording_replays_through_the_client_and_its_request_is_valid() -> None:
    """Each recorded request is sent by the real client (its body included) and validated
    against the OpenAPI document; the client hands back the recorded body, or raises the
    recorded error."""
    import json

    from spectral.providers.supabase.client import ApiError
    from supabase_replay import PLACEHOLDER, RECORDED

    replayed, bodiless = 0, set()
    for request_file in sorted(RECORDED.glob("*/*.request.json")):
        sent = json.loads(request_file.read_text().replace(PLACEHOLDER, REF))
        answer = json.loads(request_file.with_name(request_file.name.replace(
            "request", "response")).read_text().replace(PLACEHOLDER, REF))
        replay = Replay().serve(sent["method"], sent["path"], answer)
        client = ManagementClient(TOKEN, BASE, transport=replay, sleep=lambda _s: None)
        path = sent["path"].removeprefix("/v1")
        kwargs: dict[str, object] = {"json": sent["body"]} if sent["body"] is not None else {}
        if sent["query"]:
            kwargs["params"] = sent["query"]
        if answer["status"] < 400:
            assert client.request(sent["method"], path, **kwargs) == answer["body"], request_file
        else:
            with pytest.raises(ApiError) as exc:
                client.request(sent["method"], path, **kwargs)
            assert exc.value.status == answer["status"]
        if sent["body"] is None and replay.invalid and all(
                "Missing required request body" in e for e in replay.invalid):
            bodiless.add(request_file.parent.name)   # the recording kept no body: see below
        else:
            assert replay.invalid == [], replay.invalid
        replayed += 1
    assert replayed >= 17
    # the one recording whose request lost its body; our own branch request is validated in
    # test_a_data_branch_request_is_valid
    assert bodiless == {"POST_v1_projects___PROJECT_REF___branches"}


def test_a_data_branch_request_is_valid() -> None:
    answer = recorded("POST", f"/v1/projects/{REF}/branches")
    answer["status"] = 201
    replay = Replay().serve("POST", f"/v1/projects/{REF}/branches", answer)
    doc = provider(replay).create_data_branch("spectral-drill-20261130")
    assert doc["project_ref"] and replay.invalid == []


def test_the_pitr_add_on_must_be_among_the_entitled_variants() -> None:
    """Recorded entitlements list pitr_7, pitr_14 and pitr_28; a variant the plan does not
    offer is refused before the add-on is requested."""
    from spectral.errors import UsageError

    entitlements = recorded("GET", f"/v1/organizations/{REF}/entitlements")
    for e in entitlements["body"]["entitlements"]:
        if e["feature"]["key"] == "pitr.available_variants":
            e["config"]["set"] = ["pitr_7"]
    replay = Replay().serve_recorded("GET", PROJECT).serve(
        "GET", f"/v1/organizations/{REF}", ok({"id": "x", "name": "Org", "plan": "pro",
                                               "opt_in_tags": [],
                                               "allowed_release_channels": ["ga"]})).serve(
        "GET", f"/v1/organizations/{REF}/entitlements", entitlements).serve_recorded(
        "GET", BACKUPS)
    with pytest.raises(UsageError, match="does not offer the pitr_28 PITR add-on"):
        provider(replay).pitr_readiness(AssumeYes(), lambda _m: None, {"addon": "pitr_28"})
    assert ("PATCH", f"/v1/projects/{REF}/billing/addons") not in replay.requests
