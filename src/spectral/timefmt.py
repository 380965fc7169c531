"""Times in messages: exactly as PostgreSQL recorded them.

A commit's timestamp has microseconds. A message that names a boundary (the last commit before
a hole in the WAL, a window's end) and rounds it to the second, or even to the millisecond,
hands the user a time that is not the boundary: `--target-time` copied from "after
10:00:00" is 0.93 s before a commit at 10:00:00.930412. Every such message formats the time
here."""

from __future__ import annotations

from datetime import UTC, datetime


def exact(value: datetime) -> str:
    """ISO 8601 in UTC with every digit the value has (microseconds when there are any), so it
    can be pasted into `--target-time` and names the same instant."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.isoformat()
