"""Posting one alert to one webhook: a few tries with backoff inside a deadline, never raising.
The outcome names the HTTP status or the error's kind, never the URL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spectral.redact import redact

TRIES = 3
DEADLINE_S = 9.0           # every try of one hook, backoff included
TRY_TIMEOUT_S = 3.0
BACKOFF_S = (0.5, 1.0)     # before the second and the third try


@dataclass(frozen=True)
class Delivery:
    """What became of one alert to one hook (what the ledger keeps of it)."""

    status: int | None       # the hook's last HTTP status (None: no answer)
    error: str | None        # why it was not delivered (None: delivered)
    attempts: int

    @property
    def delivered(self) -> bool:
        return self.error is None


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def post(url: str, body: dict[str, Any], *, tries: int = TRIES, deadline: float = DEADLINE_S,
         try_timeout: float = TRY_TIMEOUT_S,
         sleep: Callable[[float], None] = time.sleep) -> Delivery:
    """POST `body` as JSON to `url`: retried on a 5xx or 429 answer, a timeout or a refused
    connection, at most `tries` times and within `deadline` seconds."""
    data = json.dumps(body, default=str).encode()
    end = time.monotonic() + deadline
    status: int | None = None
    error: str | None = "not sent"
    attempt = 0
    for attempt in range(1, tries + 1):
        remaining = end - time.monotonic()
        status, error = _once(url, data, max(0.1, min(try_timeout, remaining)))
        if error is None or (status is not None and not _retryable(status)):
            break
        pause = BACKOFF_S[min(attempt, len(BACKOFF_S)) - 1]
        if attempt == tries or end - time.monotonic() < pause + 0.2:
            break                   # no time left for another try
        sleep(pause)
    return Delivery(status, error, attempt)


def _once(url: str, data: bytes, timeout: float) -> tuple[int | None, str | None]:
    # imported only when a hook is posted to (~50 ms): every status and drill asks
    import httpx

    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.post(url, content=data,
                                   headers={"content-type": "application/json"})
    except httpx.TimeoutException:
        return None, f"timed out after {timeout:.1f}s"
    except (httpx.HTTPError, httpx.InvalidURL) as exc:   # the kind only: a message may
        return None, f"no answer ({type(exc).__name__})"   # carry the URL
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, redact(f"HTTP {response.status_code} "
                                        f"{response.reason_phrase}".strip())
