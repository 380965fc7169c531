"""Secret references: `env:NAME`, `file:PATH`, `op://vault/item/field` (1Password CLI).

The configuration holds references, never values. A resolved value is registered with the
redaction layer at once, so it can never be printed, logged or written by the tool.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from spectral.errors import CommandError, ConfigError
from spectral.redact import register_secret
from spectral.runner import run

SECRET_REF_RE = re.compile(r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:.+|op://[^/\s]+/[^/\s]+/[^\s]+)$")


def is_secret_ref(text: str) -> bool:
    return bool(SECRET_REF_RE.match(text))


def reference_only(value: str | None) -> str | None:
    """A configuration field that holds a secret: a reference, or nothing."""
    if value is not None and not is_secret_ref(value):
        raise ValueError("must be a secret reference (env:NAME, file:PATH or "
                         "op://vault/item/field), never the secret itself")
    return value


def resolve_secret(ref: str, *, base_dir: Path | None = None) -> str:
    """Resolve a secret reference to its value, or raise ConfigError naming the reference."""
    if ref.startswith("env:"):
        name = ref[4:]
        if name not in os.environ:
            raise ConfigError(f"secret reference {ref}: environment variable {name} is not set")
        value = os.environ[name]
    elif ref.startswith("file:"):
        path = Path(ref[5:]).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"secret reference {ref}: cannot read {path}: "
                              f"{exc.strerror}") from None
    elif ref.startswith("op://"):
        op = shutil.which("op")
        if op is None:
            raise ConfigError(f"secret reference {ref}: the 1Password CLI `op` is not installed",
                              hint="install it and sign in, or use env: / file: instead")
        try:
            value = run([op, "read", "--no-newline", ref], timeout=30).stdout
        except CommandError as exc:
            raise ConfigError(f"secret reference {ref}: `op read` failed: {exc.message}") from None
    else:
        raise ConfigError(f"not a secret reference: expected env:NAME, file:PATH or "
                          f"op://vault/item/field, got {ref[:12]!r}...")
    if not value:
        raise ConfigError(f"secret reference {ref} resolved to an empty value")
    register_secret(value)
    _register_embedded_password(value)
    return value


def _register_embedded_password(value: str) -> None:
    """A DSN secret carries a password inside it: mask that part on its own too."""
    if "=" not in value and "://" not in value:
        return
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        password = conninfo_to_dict(value).get("password")
    except ProgrammingError:
        return
    if isinstance(password, str):
        register_secret(password)


def resolve_dsn(value: str, base_dir: Path | None = None) -> str:
    """A configured DSN: the value of a secret reference, or the DSN as written."""
    return resolve_secret(value, base_dir=base_dir) if is_secret_ref(value) else value
