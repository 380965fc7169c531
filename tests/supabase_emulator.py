"""A small emulator of the Supabase Management API endpoints the provider uses, with their
documented shapes and errors. Its backups and restores are done by the local provider on a real
PostgreSQL cluster: a PITR through the Supabase code path really rewinds the data, and a project
"restored to a new project" (what the operator clicks) or a branch with data is a real cluster.

Connection strings: Supabase puts the project ref in the host name and the port is the same for
every project. Here each project gets a socket directory named after its ref
(`<sockets>/<ref>/.s.PGSQL.<port>`, a link to its cluster's real socket), so a DSN with one ref
swapped for another reaches the other project, as it does on Supabase."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
from psycopg.conninfo import conninfo_to_dict
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from read_only_endpoint import StatementError, ensure_role, run_read_only
from spectral.providers.local.provider import LocalProvider
from spectral.recovery_target import LatestTarget, RecoveryTarget, TargetKind, target_of
from supabase_replay import recorded, spec_problems

EMU_REF = "emulatedproductionaa"   # the spec's pattern: 20 lower-case letters
RESTORING_AT_LEAST = 4.0   # seconds; Supabase's own restores take minutes


@dataclass
class Project:
    ref: str
    provider: LocalProvider | None                   # None for a restored copy or a branch
    pitr_enabled: bool = True
    status: str = "ACTIVE_HEALTHY"
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    organization: str = "emulatedorganization"
    number: int = field(default_factory=lambda: secrets.randbelow(10**6))   # the integer id
    instance: tuple[LocalProvider, str] | None = None   # (owner, instance id) of a copy
    branch_id: str | None = None
    real_dsn: str | None = None                      # its cluster, for the query endpoint

    def to_json(self) -> dict[str, Any]:
        return {"id": self.ref, "ref": self.ref, "name": self.ref, "status": self.status,
                "region": "us-east-1", "organization_id": self.organization,
                "organization_slug": self.organization, "created_at": self.created_at,
                "database": {"host": f"db.{self.ref}.supabase.co", "version": "17.6.1.111",
                             "postgres_engine": "17", "release_channel": "ga"}}


@dataclass
class Emulator:
    token: str
    projects: dict[str, Project] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    throttle: int = 0                                 # answer this many requests with 429
    sockets: Path | None = None                       # <sockets>/<ref>/ per project
    port: int = 5432                                  # the one port every project answers on
    plan: str = "pro"
    lock: threading.Lock = field(default_factory=threading.Lock)
    errors: list[str] = field(default_factory=list)   # what failed inside the emulator
    spec_errors: list[str] = field(default_factory=list)   # what the OpenAPI document rejects
    denied: set[str] = field(default_factory=set)    # entitlement keys the plan lacks
    retry_after: bool = True      # a 429 carries Retry-After (else only X-RateLimit-Reset)
    window_lag: float = 0.0       # seconds the PITR window trails now (WAL ships every ~2 min)
    restore_delay: float = 0.0    # seconds a project still reads ACTIVE_HEALTHY after a request
    read_only_bypass_rls: bool = True   # supabase_read_only_user has BYPASSRLS on Supabase
    queries: int = 0              # statements run through the read-only query endpoint

    # ---- connection strings ---------------------------------------------------------------
    def expose(self, ref: str, real_dsn: str) -> str:
        """Link <sockets>/<ref>/.s.PGSQL.<port> to the cluster behind `real_dsn`; return the
        project's DSN as a client sees it."""
        assert self.sockets is not None
        parts = conninfo_to_dict(real_dsn)
        target = Path(str(parts["host"])) / f".s.PGSQL.{parts['port']}"
        folder = self.sockets / ref
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f".s.PGSQL.{self.port}").symlink_to(target)
        if ref in self.projects:
            self.projects[ref].real_dsn = real_dsn
        return f"host={folder} port={self.port} user={parts['user']} dbname={parts['dbname']}"

    # ---- what the operator does in the dashboard ----------------------------------------
    def restore_backup_to_new_project(self, source: str, inserted_at: str) -> str:
        """Dashboard -> Database -> Backups -> Scheduled backups -> the backup of
        `inserted_at` -> Restore to a new project: the backup alone, no WAL after it."""
        owner = self.projects[source].provider
        assert owner is not None
        backup = next(b for b in owner.backups() if b.stop_time.isoformat() == inserted_at)
        return self.restore_to_new_project(
            source, None, target=target_of(TargetKind.LSN, backup.stop_lsn),
            backup_id=backup.id)

    def restore_to_new_project(self, source: str, when_unix: int | None, *,
                               branch_id: str | None = None, background: bool = False,
                               target: RecoveryTarget | None = None,
                               backup_id: str | None = None) -> str:
        """Dashboard -> Database -> Backups -> Restore to a new project (a time, or the latest
        backup when `when_unix` is None); a branch with data when `branch_id` is set. Returns
        the new project's ref at once; with `background` the copy is made in a thread."""
        owner = self.projects[source].provider
        assert owner is not None
        ref = ("emb" if branch_id else "emr") + "".join(
            secrets.choice(string.ascii_lowercase) for _ in range(17))   # the spec's pattern
        project = Project(ref, None, pitr_enabled=False, status="COMING_UP",
                          branch_id=branch_id)
        with self.lock:
            self.projects[ref] = project
        if target is None:
            target = (LatestTarget() if when_unix is None else
                      target_of(TargetKind.TIME,
                                     datetime.fromtimestamp(when_unix, UTC).isoformat()))

        def copy() -> None:
            assert target is not None
            try:
                inst = owner.restore(target, backup_id=backup_id)
                project.instance = (owner, inst.id)
                self.expose(ref, inst.dsn)
                project.status = "ACTIVE_HEALTHY"
            except Exception as exc:
                project.status = "INIT_FAILED"
                self.errors.append(f"restore of {ref} failed: {exc!r}")

        if background:
            threading.Thread(target=copy, daemon=True).start()
        else:
            copy()
        return ref

    def close(self) -> None:
        """Tear down every copy the emulator made (the test's own clean-up)."""
        for ref in [r for r, p in self.projects.items() if p.provider is None]:
            self.remove(ref)

    def remove(self, ref: str) -> None:
        project = self.projects.pop(ref)
        if project.instance is not None:
            owner, inst_id = project.instance
            owner.teardown(inst_id)
        if self.sockets is not None:
            shutil.rmtree(self.sockets / ref, ignore_errors=True)

    def app(self) -> Starlette:
        v = self._validated
        return Starlette(routes=[
            Route("/v1/projects", v(self.list_projects), methods=["GET"]),
            Route("/v1/projects/{ref}", v(self.project), methods=["GET"]),
            Route("/v1/projects/{ref}", v(self.delete_project), methods=["DELETE"]),
            Route("/v1/organizations/{slug}", v(self.organization), methods=["GET"]),
            Route("/v1/organizations/{slug}/entitlements", v(self.entitlements),
                  methods=["GET"]),
            Route("/v1/projects/{ref}/billing/addons", v(self.addons), methods=["GET"]),
            Route("/v1/projects/{ref}/billing/addons", v(self.apply_addon), methods=["PATCH"]),
            Route("/v1/projects/{ref}/branches", v(self.create_branch), methods=["POST"]),
            Route("/v1/branches/{branch_id}", v(self.delete_branch), methods=["DELETE"]),
            Route("/v1/projects/{ref}/health", v(self.health), methods=["GET"]),
            Route("/v1/projects/{ref}/database/backups", v(self.backups), methods=["GET"]),
            Route("/v1/projects/{ref}/database/backups/restore-pitr", v(self.restore_pitr),
                  methods=["POST"]),
            Route("/v1/projects/{ref}/database/query/read-only", v(self.read_only_query),
                  methods=["POST"]),
        ], middleware=[])

    def _validated(self, handler: Any) -> Any:
        """Every request the client sends, and every successful answer served, is checked
        against the OpenAPI document; what it rejects is kept in `spec_errors`."""
        async def run(request: Request) -> JSONResponse:
            body = await request.body()
            response: JSONResponse = await handler(request)
            self.spec_errors += spec_problems(request.method, request.url.path,
                                              dict(request.query_params), body,
                                              dict(request.headers), response.status_code,
                                              bytes(response.body))
            return response
        return run

    def _auth(self, request: Request) -> JSONResponse | None:
        self.calls.append((request.method, request.url.path))
        if self.throttle > 0:
            self.throttle -= 1
            headers = {"X-RateLimit-Limit": "120", "X-RateLimit-Remaining": "0",
                       "X-RateLimit-Reset": "1"}
            if self.retry_after:                       # Supabase sends it only sometimes
                headers["Retry-After"] = "0"
            return JSONResponse({"message": "Too Many Requests"}, status_code=429,
                                headers=headers)
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        return None

    def _check(self, request: Request) -> JSONResponse | Project:
        refused = self._auth(request)
        if refused is not None:
            return refused
        project = self.projects.get(request.path_params["ref"])
        if project is None:
            return JSONResponse({"message": "Project not found"}, status_code=404)
        return project

    async def project(self, request: Request) -> JSONResponse:
        p = self._check(request)
        if isinstance(p, JSONResponse):
            return p
        return JSONResponse(p.to_json())

    async def list_projects(self, request: Request) -> JSONResponse:
        refused = self._auth(request)
        if refused is not None:
            return refused
        with self.lock:
            return JSONResponse([p.to_json() for p in self.projects.values()])

    async def delete_project(self, request: Request) -> JSONResponse:
        p = self._check(request)
        if isinstance(p, JSONResponse):
            return p
        if p.provider is not None:
            return JSONResponse({"message": "the emulator keeps its source projects"},
                                status_code=400)
        self.remove(p.ref)
        return JSONResponse({"id": p.number, "ref": p.ref, "name": p.ref})

    async def organization(self, request: Request) -> JSONResponse:
        refused = self._auth(request)
        if refused is not None:
            return refused
        slug = request.path_params["slug"]
        return JSONResponse({"id": slug, "name": slug, "plan": self.plan, "opt_in_tags": [],
                             "allowed_release_channels": ["ga"]})

    async def entitlements(self, request: Request) -> JSONResponse:
        """The two boolean entitlements the drills read, from Supabase's recorded answer for a
        paid organisation; on the free plan (or with `denied`) not entitled. (The recorded
        `pitr.available_variants` entry is left out: its `config` matches two branches of the
        document's `oneOf`, so a real answer fails the published schema; the add-on check is
        tested on the recording itself, tests/test_supabase_recorded.py.)"""
        refused = self._auth(request)
        if refused is not None:
            return refused
        body = recorded("GET", "/v1/organizations/__PROJECT_REF__/entitlements")["body"]
        kept = [e for e in body["entitlements"]
                if e["feature"]["key"] in ("backup.restore_to_new_project", "project_cloning")]
        for e in kept:
            if e["feature"]["key"] in self.denied or self.plan == "free":
                e["hasAccess"] = False
        return JSONResponse({"entitlements": kept})

    async def addons(self, request: Request) -> JSONResponse:
        p = self._check(request)
        if isinstance(p, JSONResponse):
            return p
        def variant(v: str) -> dict[str, Any]:
            return {"id": v, "name": v, "price": {"description": "$100/month", "type": "fixed",
                                                 "interval": "monthly", "amount": 100}}

        selected = [{"type": "pitr", "variant": variant("pitr_7")}] if p.pitr_enabled else []
        return JSONResponse({"selected_addons": selected, "available_addons": [
            {"type": "pitr", "name": "Point in time recovery",
             "variants": [variant(v) for v in ("pitr_7", "pitr_14", "pitr_28")]}]})

    async def apply_addon(self, request: Request) -> JSONResponse:
        p = self._check(request)
        if isinstance(p, JSONResponse):
            return p
        body = await request.json()
        if body.get("addon_type") != "pitr" or body.get("addon_variant") not in (
                "pitr_7", "pitr_14", "pitr_28"):
            return JSONResponse({"message": "unsupported add-on"}, status_code=400)
        if self.plan == "free":
            return JSONResponse({"message": "PITR is only available on paid plans."},
                                status_code=400)
        p.pitr_enabled = True
        return JSONResponse({})

    async def create_branch(self, request: Request) -> JSONResponse:
        p = self._check(request)
        if isinstance(p, JSONResponse):
            return p
        body = await request.json()
        if not body.get("branch_name"):
            return JSONResponse({"message": "branch_name is required"}, status_code=400)
        if not body.get("with_data"):
            return JSONResponse({"message": "the emulator only makes branches with data"},
                                status_code=400)
        branch_id = str(uuid.uuid4())
        ref = self.restore_to_new_project(p.ref, None, branch_id=branch_id, background=True)
        return JSONResponse({"id": branch_id, "name": body["branch_name"],
                             "project_ref": ref, "parent_project_ref": p.ref,
                             "is_default": False, "persistent": False,
                             "status": "CREATING_PROJECT", "with_data": True,
                             "created_at": datetime.now(UTC).isoformat(),
                             "updated_at": datetime.now(UTC).isoformat()}, status_code=201)

    async def delete_branch(self, request: Request) -> JSONResponse:
        refused = self._auth(request)
        if refused is not None:
            return refused
        branch = request.path_params["branch_id"]   # the branch's project ref, as Supabase's
        found = [r for r, p in self.projects.items() if p.branch_id and r == branch]
        if not found:
            return JSONResponse({"message": "Branch not found"}, status_code=404)
        self.remove(found[0])
        return JSONResponse({"message": "ok"})

    async def health(self, request: Request) -> JSONResponse:
        p = self._check(request)
        if isinstance(p, JSONResponse):
            return p
        up = p.status == "ACTIVE_HEALTHY"
        return JSONResponse([{"name": "db", "healthy": up,      # deprecated, still required
                              "status": "ACTIVE_HEALTHY" if up else "COMING_UP"}])

    async def backups(self, request: Request) -> JSONResponse:
        p = self._check(request)
        if isinstance(p, JSONResponse):
            return p
        if p.provider is None:   # a restored copy: no backups of its own yet
            return JSONResponse({"region": "local", "pitr_enabled": False,
                                 "walg_enabled": True, "backups": [],
                                 "physical_backup_data": {}})
        p.provider.flush_archive()
        window = p.provider.window()
        body: dict[str, Any] = {
            "region": "local", "pitr_enabled": p.pitr_enabled, "walg_enabled": True,
            "backups": [{"id": i, "is_physical_backup": True, "status": "COMPLETED",
                         "inserted_at": b.stop_time.isoformat()}
                        for i, b in enumerate(p.provider.backups(), start=1)],
            "physical_backup_data": {}}
        if p.pitr_enabled and window.earliest_time and window.latest_time:
            # the archive was just flushed: everything up to now is recoverable
            body["physical_backup_data"] = {
                "earliest_physical_backup_date_unix": int(window.earliest_time.timestamp()),
                "latest_physical_backup_date_unix": int(time.time() - self.window_lag)}
        return JSONResponse(body)

    async def restore_pitr(self, request: Request) -> JSONResponse:
        p = self._check(request)
        if isinstance(p, JSONResponse):
            return p
        if not p.pitr_enabled or p.provider is None:
            return JSONResponse({"message": "PITR is not enabled for this project."},
                                status_code=400)
        body = await request.json()
        target = body.get("recovery_time_target_unix")
        if not isinstance(target, int):
            return JSONResponse({"message": "recovery_time_target_unix must be an integer"},
                                status_code=400)
        if not self.restore_delay:
            p.status = "RESTORING"

        def work() -> None:
            from datetime import UTC, datetime

            time.sleep(self.restore_delay)     # Supabase may not show RESTORING at once
            p.status = "RESTORING"
            began = time.monotonic()
            try:
                when = datetime.fromtimestamp(target, UTC).isoformat()
                p.provider.restore_in_place(target_of(TargetKind.TIME, when),
                                            confirmed=True)
                # a real restore takes minutes: RESTORING shows for a few seconds at least
                time.sleep(max(0.0, RESTORING_AT_LEAST - (time.monotonic() - began)))
                p.status = "ACTIVE_HEALTHY"
            except Exception:
                p.status = "RESTORE_FAILED"

        threading.Thread(target=work, daemon=True).start()
        return JSONResponse(None, status_code=201)


    async def read_only_query(self, request: Request) -> JSONResponse:
        p = self._check(request)
        if isinstance(p, JSONResponse):
            return p
        if p.status != "ACTIVE_HEALTHY" or p.real_dsn is None:
            return JSONResponse({"message": f"project is {p.status}"}, status_code=400)
        body = await request.json()
        dsn = p.real_dsn
        self.queries += 1

        def work() -> list[dict[str, Any]]:
            ensure_role(dsn, self.read_only_bypass_rls)
            return run_read_only(dsn, str(body.get("query")))
        try:
            rows = await asyncio.to_thread(work)
        except StatementError as exc:    # the spec's one documented failure of this path
            return JSONResponse({"message": str(exc)}, status_code=500)
        return JSONResponse(rows, status_code=201)


class Server:
    """The emulator on 127.0.0.1, in a thread of the test process, stopped by the test."""

    def __init__(self, emulator: Emulator) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(emulator.app(), host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        # at once: a graceful shutdown waits for every keep-alive connection a client (the
        # command line run in this process) left open, up to the join's 10 s, every test
        self.server.should_exit = self.server.force_exit = True
        self.thread.join(timeout=10)
