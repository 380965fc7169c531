"""Supabase's recorded answers (tests/data/supabase-api/recorded/), served to the real client
over httpx's transport interface, with answers a test adds in the spec's shapes for calls the
recordings do not hold. Every request the client makes is kept for the test to inspect."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import httpx

DATA = Path(__file__).parent / "data" / "supabase-api"
RECORDED = DATA / "recorded"
PLACEHOLDER = "__PROJECT_REF__"
REF = "abcdefghijklmnopqrst"          # the spec's pattern: 20 lower-case letters
TOKEN = "sbp_replaytoken0123456789abcdef"


def folder_of(method: str, path: str) -> Path:
    path = path.replace(REF, PLACEHOLDER)
    return RECORDED / f"{method}_{path.strip('/').replace('/', '_').replace('-', '_')}"


def recorded(method: str, path: str, which: str = "default") -> dict[str, Any]:
    """One recorded response: {status, headers, body}, with the placeholder ref made real."""
    text = (folder_of(method, path) / f"{which}.response.json").read_text()
    doc: dict[str, Any] = json.loads(text.replace(PLACEHOLDER, REF))
    return doc


@functools.cache
def spec() -> Any:
    """The published document, read as published except for two defects that stop any
    validator: openapi-spec-validator rejects the document as a whole (so it is not asked to
    validate it), and a few boolean parameters declare a string default ("true"), which a
    validator then applies and rejects: those defaults are dropped."""
    from openapi_core import Config, OpenAPI

    doc = json.loads((DATA / "openapi.json").read_text())
    for item in doc["paths"].values():
        for op in item.values():
            for param in op.get("parameters", []) if isinstance(op, dict) else []:
                schema = param.get("schema", {})
                if schema.get("type") == "boolean" and isinstance(schema.get("default"), str):
                    del schema["default"]
    return OpenAPI.from_dict(doc, config=Config(spec_validator_cls=None))


def request_errors(request: httpx.Request) -> list[str]:
    """What the OpenAPI document says is wrong with a request the client sent."""
    from openapi_core.testing import MockRequest

    mock = MockRequest("https://api.supabase.com", request.method.lower(), request.url.path,
                       args=dict(request.url.params), data=request.content or None,
                       headers=dict(request.headers))
    try:
        spec().validate_request(mock)
    except Exception as exc:   # the validator's own error types; their text says what
        return [f"{request.method} {request.url.path}: {exc}"]
    return []


class Replay(httpx.BaseTransport):
    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str]] = []
        self.invalid: list[str] = []          # requests the OpenAPI document rejects

    def serve(self, method: str, path: str, *answers: dict[str, Any]) -> Replay:
        """Answer `method path` with these responses in turn (the last one repeats)."""
        self.answers[(method, path)] = list(answers)
        return self

    def serve_recorded(self, method: str, path: str, which: str = "default") -> Replay:
        return self.serve(method, path, recorded(method, path, which))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.method, request.url.path)
        self.requests.append(key)
        self.invalid += request_errors(request)
        queue = self.answers.get(key)
        if not queue:
            return httpx.Response(404, json={"message": f"not recorded: {key}"})
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return httpx.Response(answer["status"], headers=answer.get("headers", {}),
                              json=answer["body"])


def ok(body: Any, **headers: str) -> dict[str, Any]:
    return {"status": 200, "headers": {"x-ratelimit-limit": "120",
                                       "x-ratelimit-remaining": "119",
                                       "x-ratelimit-reset": "60", **headers}, "body": body}


def spec_problems(method: str, path: str, query: dict[str, str], body: bytes,
                  headers: dict[str, str], status: int, answer: bytes) -> list[str]:
    """What the OpenAPI document rejects in one exchange: the request always, the answer when
    it is a success (errors such as the 400 for PITR are real but not in the document)."""
    from openapi_core.testing import MockRequest, MockResponse

    request = MockRequest("https://api.supabase.com", method.lower(), path, args=query,
                          data=body or None, headers=headers)
    problems = []
    try:
        spec().validate_request(request)
    except Exception as exc:
        problems.append(f"request {method} {path}: {exc}")
    if status < 400:
        try:
            spec().validate_response(request, MockResponse(answer, status_code=status))
        except Exception as exc:
            detail = getattr(exc, "__cause__", None) or exc
            problems.append(f"answer {status} to {method} {path}: {exc}: {detail}")
    return problems
