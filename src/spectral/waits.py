"""Every wait has a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(Exception):
    pass


def wait_until(predicate: Callable[[], T | None], *, timeout: float, interval: float = 0.05,
               what: str = "condition", max_interval: float = 1.0) -> T:
    """Call `predicate` until it returns a truthy value or `timeout` seconds pass; the interval
    grows by half each time up to `max_interval`."""
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        result = predicate()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(f"{what} not reached within {timeout:g}s")
        time.sleep(min(delay, remaining))
        delay = min(delay * 1.5, max_interval)
