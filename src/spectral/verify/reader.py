"""How a check reads a database: a connection string when there is one, or an endpoint that
runs read-only statements (verify/by_query.py) when a provider offers only that. A restored copy
says which (`Copy.read()`); the drill's checks do not care."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from spectral.verify.document import Fingerprint

if TYPE_CHECKING:   # the driver loads when a database is read, not with the provider protocol
    import psycopg

    from spectral.verify.fingerprint import Options


class Rows(Protocol):
    def rows(self, query: str, params: Sequence[Any] | Mapping[str, Any] = ()
             ) -> list[tuple[Any, ...]]:
        """The rows of one read-only statement (psycopg placeholders)."""
        ...


class Reader(Rows, Protocol):
    what: str

    def fingerprint(self, opts: Options) -> Fingerprint: ...


class ConnRows:
    """Rows through a connection a caller already holds."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def rows(self, query: str, params: Sequence[Any] | Mapping[str, Any] = ()
             ) -> list[tuple[Any, ...]]:
        return list(self.conn.execute(query, params or None).fetchall())


class DsnReader:
    """A database reached by its connection string."""

    def __init__(self, dsn: str, what: str = "the database") -> None:
        self.dsn, self.what = dsn, what

    def fingerprint(self, opts: Options) -> Fingerprint:
        from spectral.verify.fingerprint import take

        return take(self.dsn, opts)

    def rows(self, query: str, params: Sequence[Any] | Mapping[str, Any] = ()
             ) -> list[tuple[Any, ...]]:
        from spectral.pg.conn import connect

        with connect(self.dsn) as conn:
            return ConnRows(conn).rows(query, params)


def as_rows(db: Rows | psycopg.Connection[Any]) -> Rows:
    import psycopg

    return ConnRows(db) if isinstance(db, psycopg.Connection) else db
