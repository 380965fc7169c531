"""The console every human rendering prints to (imported when a command prints: rich is not
loaded for `--help` or a command's start)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from spectral.redact import redact


class RedactingConsole(Console):
    """A console whose plain-string output passes through the redaction function."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(redact(o) if isinstance(o, str) else o for o in objects), **kwargs)
