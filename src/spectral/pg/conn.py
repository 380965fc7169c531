"""Connections: one place that opens them, with a timeout and redacted errors."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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
        return "a database whose connection string cannot be parsed"
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


class Sessions:
    """Every connection one operation holds on a database, so that one call cancels what each
    of them is running: an interrupt, an error in one worker, or a session that must give way
    to production. A query blocked on the server is seen by nobody else, and a thread cannot be
    interrupted in it: only a cancel request ends it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[psycopg.Connection[Any], int] = {}   # connection -> backend pid
        self.cancelled = False

    @contextmanager
    def open(self, conninfo: str, **kwargs: Any) -> Iterator[psycopg.Connection[Any]]:
        """A connection counted among these sessions while it is open; one opened after
        `cancel` is refused, so a worker that was still connecting does not start reading."""
        with connect(conninfo, **kwargs) as conn:
            with self._lock:
                if self.cancelled:
                    raise psycopg.errors.QueryCanceled("cancelled before it started")
                self._open[conn] = conn.info.backend_pid
            try:
                yield conn
            finally:
                with self._lock:
                    del self._open[conn]

    def pids(self) -> list[int]:
        with self._lock:
            return list(self._open.values())

    def cancel(self) -> None:
        """Cancel the statement each session is running (a session between statements is not
        disturbed; the caller's stop flag keeps it from starting another)."""
        with self._lock:
            self.cancelled = True
            conns = list(self._open)
        for conn in conns:
            cancel_quietly(conn)


def cancel_quietly(conn: psycopg.Connection[Any], timeout: float = 3) -> None:
    """Ask the server to cancel the connection's current statement; a connection that is gone
    has nothing to cancel."""
    if conn.closed:
        return
    with suppress(psycopg.Error, OSError):
        conn.cancel_safe(timeout=timeout)
