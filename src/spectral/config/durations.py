"""Durations as people write them in a runbook: `2m`, `2 min`, `24h`, `60 minutes`, `1d`."""

from __future__ import annotations

import math
import re

_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
}
# Longer than any runbook's interval, and short enough that `now - duration` is a date.
_LONGEST = 36500 * 86400
_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$", re.I)


def parse_duration(text: str | int | float) -> float:
    """Seconds in `text`; a bare number is seconds. Raises ValueError naming the expectation."""
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return _bounded(float(text))
    m = _RE.match(text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"expected a duration such as '2m', '24h' or '60 minutes', got {text!r}")
    return _bounded(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _bounded(seconds: float) -> float:
    if not math.isfinite(seconds) or seconds > _LONGEST:
        raise ValueError(f"a duration longer than 100 years ({seconds:g} s) is not an interval "
                         "a runbook keeps")
    return seconds


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
