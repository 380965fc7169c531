"""A small emulator of the Supabase Management API endpoints the provider uses, with their
documented shapes and errors. Its backups and restores are done by the local provider on a real
PostgreSQL cluster: a PITR through the Supabase code path really rewinds the data."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from spectral.providers.base import RecoveryTarget, TargetKind
from spectral.providers.local.provider import LocalProvider


@dataclass
class Project:
    ref: str
    provider: LocalProvider
    pitr_enabled: bool = True
    status: str = "ACTIVE_HEALTHY"


@dataclass
class Emulator:
    token: str
    projects: dict[str, Project] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    throttle: int = 0                                 # answer this many requests with 429

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/v1/projects/{ref}", self.project, methods=["GET"]),
            Route("/v1/projects/{ref}/health", self.health, methods=["GET"]),
            Route("/v1/projects/{ref}/database/backups", self.backups, methods=["GET"]),
            Route("/v1/projects/{ref}/database/backups/restore-pitr", self.restore_pitr,
                  methods=["POST"]),
        ], middleware=[])

    def _check(self, request: Request) -> JSONResponse | Project:
        self.calls.append((request.method, request.url.path))
        if self.throttle > 0:
            self.throttle -= 1
            return JSONResponse({"message": "Too Many Requests"}, status_code=429,
                                headers={"Retry-After": "0", "X-RateLimit-Limit": "120",
                                         "X-RateLimit-Remaining": "0"})
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return JSONResponse({"message": "Unauthorized"}, status_code=401)
        project = self.projects.get(request.path_params["ref"])
        if project is None:
            return JSONResponse({"message": "Project not found"}, status_code=404)
        return project

    async def project(self, request: Request) -> JSONResponse:
        p = self._check(request)
        if isinstance(p, JSONResponse):
            return p
        return JSONResponse({"id": p.ref, "ref": p.ref, "name": p.ref, "status": p.status,
                             "region": "local"})

    async def health(self, request: Request) -> JSONResponse:
        p = self._check(request)
        if isinstance(p, JSONResponse):
            return p
        return JSONResponse([{"name": "db", "healthy": p.status == "ACTIVE_HEALTHY",
                              "status": p.status}])

    async def backups(self, request: Request) -> JSONResponse:
        p = self._check(request)
        if isinstance(p, JSONResponse):
            return p
        p.provider.flush_archive()
        window = p.provider.window()
        body: dict[str, Any] = {
            "region": "local", "pitr_enabled": p.pitr_enabled, "walg_enabled": True,
            "backups": [{"id": i, "is_physical_backup": True, "status": "COMPLETED",
                         "inserted_at": b.stop_time.isoformat()}
                        for i, b in enumerate(p.provider.backups(), start=1)],
            "physical_backup_data": {}}
        if p.pitr_enabled and window.earliest_time and window.latest_time:
            body["physical_backup_data"] = {
                "earliest_physical_backup_date_unix": int(window.earliest_time.timestamp()),
                "latest_physical_backup_date_unix": int(window.latest_time.timestamp())}
        return JSONResponse(body)

    async def restore_pitr(self, request: Request) -> JSONResponse:
        p = self._check(request)
        if isinstance(p, JSONResponse):
            return p
        if not p.pitr_enabled:
            return JSONResponse({"message": "PITR is not enabled for this project."},
                                status_code=400)
        body = await request.json()
        target = body.get("recovery_time_target_unix")
        if not isinstance(target, int):
            return JSONResponse({"message": "recovery_time_target_unix must be an integer"},
                                status_code=400)
        p.status = "RESTORING"

        def work() -> None:
            from datetime import UTC, datetime

            try:
                when = datetime.fromtimestamp(target, UTC).isoformat()
                p.provider.restore_in_place(RecoveryTarget(TargetKind.TIME, when),
                                            confirmed=True)
                p.status = "ACTIVE_HEALTHY"
            except Exception:
                p.status = "RESTORE_FAILED"

        threading.Thread(target=work, daemon=True).start()
        return JSONResponse({}, status_code=201)


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
        self.server.should_exit = True
        self.thread.join(timeout=10)
