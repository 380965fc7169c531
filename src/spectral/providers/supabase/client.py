"""A well-behaved Management API client: at most 120 requests per minute (the API's limit per
scope) counted on our side, 429 and X-RateLimit-* honoured with backoff, timeouts on every call,
API errors shown with their message, the token never printed or logged (it is a resolved
secret: the redaction layer masks it everywhere)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import httpx

from spectral.errors import CouldNotVerify, SpectralError

DEFAULT_BASE = "https://api.supabase.com/v1"
RATE_LIMIT = 120          # requests
RATE_WINDOW = 60.0        # per this many seconds


class ApiError(SpectralError):
    exit_code = CouldNotVerify.exit_code

    def __init__(self, status: int, message: str, path: str) -> None:
        super().__init__(f"Supabase Management API {status} on {path}: {message}")
        self.status = status
        self.api_message = message


def retry_delay(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait after a 429: Retry-After, else X-RateLimit-Reset, else backoff."""
    for header in ("retry-after", "x-ratelimit-reset"):
        value = response.headers.get(header)
        if value:
            try:
                seconds = float(value)
            except ValueError:
                continue
            if seconds > 1e9:            # an epoch time, not a delay
                seconds -= time.time()
            return max(0.0, min(seconds, 60.0))
    return min(2.0 ** attempt * 0.5, 30.0)


class ManagementClient:
    def __init__(self, token: str, base_url: str = DEFAULT_BASE, *, timeout: float = 30.0,
                 max_retries: int = 5, limit: int = RATE_LIMIT, window: float = RATE_WINDOW,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout,
                                  headers={"Authorization": f"Bearer {token}",
                                           "Accept": "application/json"}, transport=transport)
        self.max_retries = max_retries
        self.retries = 0
        self.limit, self.window = limit, window
        self._clock, self._sleep = clock, sleep
        self._sent: deque[float] = deque()
        self._not_before = 0.0       # set when the server says the budget is spent
        self.waited = 0.0            # seconds spent waiting for the budget (shown by tests)

    def _pace(self) -> None:
        """Wait until one more request stays within `limit` per `window`."""
        now = self._clock()
        while self._sent and now - self._sent[0] >= self.window:
            self._sent.popleft()
        delay = max(self._not_before - now, 0.0)
        if len(self._sent) >= self.limit:
            delay = max(delay, self._sent[0] + self.window - now)
        if delay > 0:
            self.waited += delay
            self._sleep(delay)
        self._sent.append(self._clock())

    def _note_budget(self, response: httpx.Response) -> None:
        """The server's word on the budget: its limit replaces ours, and a spent budget waits
        for its reset."""
        limit = response.headers.get("x-ratelimit-limit")
        if limit and limit.isdigit() and int(limit) > 0:
            self.limit = int(limit)
        if response.headers.get("x-ratelimit-remaining") == "0":
            self._not_before = self._clock() + retry_delay(response, 0)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in range(self.max_retries + 1):
            self._pace()
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                raise CouldNotVerify(f"Supabase Management API unreachable on {path}: "
                                     f"{type(exc).__name__}") from None
            if response.status_code == 429 and attempt < self.max_retries:
                self.retries += 1
                self._sleep(retry_delay(response, attempt))
                continue
            self._note_budget(response)
            if response.status_code >= 400:
                raise ApiError(response.status_code, _message(response), path)
            return response.json() if response.content else None
        raise ApiError(429, "rate limited; gave up after retries", path)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def patch(self, path: str, json: Any = None) -> Any:
        return self.request("PATCH", path, json=json)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)[:300]
    return str(body)[:300]
