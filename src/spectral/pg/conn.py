"""Connections: one place that opens them, with a timeout and redacted errors."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from spectral.errors import ConnectError
from spectral.redact import redact


def connect(conninfo: str, *, timeout: float = 10, autocommit: bool = True,
            **kwargs: Any) -> psycopg.Connection[Any]:
    """Open a connection or raise ConnectError with a one-line, redacted reason."""
    try:
        return psycopg.connect(conninfo, connect_timeout=max(1, int(timeout)),
                               autocommit=autocommit, application_name="spectral", **kwargs)
    except psycopg.Error as exc:
        reason = " ".join(str(exc).split())
        raise ConnectError(f"cannot connect to {describe(conninfo)}: {redact(reason)}") from None


def describe(conninfo: str) -> str:
    """A human description of a connection target with no secret in it."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "the configured database (unparseable DSN)"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    db = parts.get("dbname") or parts.get("user") or "postgres"
    return f"database {db} at {host}:{port}"


def with_dbname(conninfo: str, dbname: str) -> str:
    parts = conninfo_to_dict(conninfo)
    parts["dbname"] = dbname
    return make_conninfo("", **parts)


def public_dsn(conninfo: str) -> str:
    """A DSN to show to a person or a program: every password removed."""
    parts = {k: v for k, v in conninfo_to_dict(conninfo).items() if k != "password"}
    return redact(make_conninfo("", **parts))
