"""Where a partner's corpus lives on disk, and the names that must never escape that folder."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from spectral.errors import UsageError

PARTNER_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")
KEY_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
FORMAT = "spectral.rules"
VERSION = 1


def check_partner(slug: str) -> str:
    if not PARTNER_RE.match(slug):
        raise UsageError(f"partner {slug!r} is not a partner slug (lower-case letters, digits "
                         f"and '-', 2-40 characters); it could escape the output folder")
    return slug


def partner_dir(out: Path, slug: str) -> Path:
    check_partner(slug)
    base = out.resolve()
    target = (base / slug).resolve()
    if target.parent != base:
        raise UsageError(f"partner {slug!r} would be written outside {out}")
    return target


def rule_path(corpus: str, key: str) -> str:
    """A rule's file, relative to the partner folder (validated names only), in one of 16 shard
    directories chosen from the key: stable names, and no directory of 100,000 files."""
    if not KEY_RE.match(corpus) or not KEY_RE.match(key) or ".." in corpus or ".." in key:
        raise UsageError(f"rule {corpus}/{key} has a name that cannot be a file name")
    shard = hashlib.sha256(key.encode()).hexdigest()[0]
    return f"rules/{corpus}/{shard}/{key}.json"
