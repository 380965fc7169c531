"""The one redaction function every printer, log writer and ledger writer goes through.

Two layers: every secret value the tool resolved in this process is registered and replaced
wherever it appears; and credential-shaped text (URI passwords, password=..., bearer tokens)
is masked even when the value was never seen by the resolver.
"""

from __future__ import annotations

import re
import threading
from typing import Any

MASK = "********"

_lock = threading.Lock()
_known: set[str] = set()

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # postgresql://user:password@host  ->  postgresql://user:********@host
    (re.compile(r"(?P<pre>[a-z][a-z0-9+.-]*://[^\s:/@]+:)(?P<secret>[^\s@/]+)(?P<post>@)", re.I),
     rf"\g<pre>{MASK}\g<post>"),
    # key=value forms in libpq conninfo strings, logs and JSON ("password": "..."); not a
    # file's name (/etc/passwd: ...).
    # An unquoted value ends before a quote that closes the text around it ("... password=x"),
    # which stays; a quote inside the value (x"y) is masked with the rest of it.
    (re.compile(r"(?P<pre>(?<![/.\w-])(?:password|passwd|pwd|secret|token|apikey|api_key)"
                r"[\"']?\s*[=:]\s*)(?P<secret>'[^']*'|\"[^\"]*\"|[^\s&,;]+?(?=['\"]*(?:[\s&,;]|$)))",
                re.I), rf"\g<pre>{MASK}"),
    (re.compile(r"(?P<pre>\bBearer\s+)(?P<secret>[A-Za-z0-9._~+/=-]+)", re.I), rf"\g<pre>{MASK}"),
    # Supabase personal access tokens and service keys
    (re.compile(r"\bsbp_[A-Za-z0-9]{8,}\b"), MASK),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b"), MASK),
]


def register_secret(value: str) -> None:
    """Remember a resolved secret so that it is masked wherever it shows up later."""
    if value and len(value) >= 4:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """Return `text` with every known secret and credential-shaped substring masked."""
    if not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    for pattern, repl in _PATTERNS:
        text = pattern.sub(repl, text)
    return text


def redact_obj(obj: Any) -> Any:
    """Redact every string inside a JSON-like structure (dicts, lists, scalars)."""
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {k: redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact_obj(v) for v in obj]
    return obj
