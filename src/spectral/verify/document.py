"""The fingerprint document as types: where and when it was taken (`Source`), each schema's
description and checksum (`SchemaEntry`; the whole database's event triggers are one more
such entry), each table's facts (`TableFacts`), the whole sealed
document (`Fingerprint`). JSON only at the edges: `to_json` gives the document exactly as it is
written to a file, kept in the ledger and printed with --json (keys in this order, the seal
included); `from_json` reads one back, older versions' missing parts as their defaults."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from spectral.verify.collations import Collations
from spectral.verify.kinds import Method, TableStatus

FORMAT = "spectral.fingerprint"
VERSION = 1
Json = dict[str, Any]
SequenceValue = int | str | None   # None before its first nextval, "unreadable" without rights


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Source:
    """The database a fingerprint read, and the moment (its LSN) it read it at."""

    server_version: str
    server_version_num: int
    lsn: str
    database: str
    system_identifier: str | None = None   # None without pg_monitor
    timeline: int | None = None
    last_commit: str | None = None          # ISO time; None without track_commit_timestamp
    read_by: str | None = None              # how, when not over a connection of its own

    def to_json(self) -> Json:
        return {"server_version": self.server_version,
                "server_version_num": self.server_version_num, "lsn": self.lsn,
                "database": self.database, "system_identifier": self.system_identifier,
                "timeline": self.timeline, "last_commit": self.last_commit,
                **({"read_by": self.read_by} if self.read_by is not None else {})}

    @classmethod
    def from_json(cls, d: Json) -> Source:
        return cls(str(d.get("server_version", "")), int(d.get("server_version_num", 0)),
                   str(d["lsn"]), str(d.get("database", "")), d.get("system_identifier"),
                   d.get("timeline"), d.get("last_commit"), d.get("read_by"))


@dataclass(frozen=True)
class SchemaEntry:
    """One schema: its objects as the catalogs describe them (verify/catalog.py) and their
    checksum; `missing` when the schema does not exist."""

    missing: bool
    checksum: str | None
    objects: Json = field(default_factory=dict)

    @classmethod
    def of(cls, objects: Json | None) -> SchemaEntry:
        if objects is None:
            return cls(True, None, {})
        return cls(False, sha256(canonical(objects)), objects)

    def to_json(self) -> Json:
        return {"missing": self.missing, "checksum": self.checksum, "objects": self.objects}

    @classmethod
    def from_json(cls, d: Json) -> SchemaEntry:
        return cls(bool(d.get("missing", False)), d.get("checksum"), d.get("objects", {}))


@dataclass(frozen=True)
class TableFacts:
    """One table: its exact row count, its content checksum (and how it was computed), its
    newest change, whether it could be read. The locator is physical (it differs after a dump
    and restore): compare never reads it."""

    rows: int | None
    content: str | None = None
    method: str = Method.COUNT.value
    last_change: str | None = None
    status: TableStatus = TableStatus.OK
    reason: str | None = None
    locator: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is TableStatus.OK

    def to_json(self) -> Json:
        return {"rows": self.rows, "content": self.content, "method": self.method,
                "last_change": self.last_change, "status": self.status.value,
                "reason": self.reason, "locator": self.locator}

    @classmethod
    def from_json(cls, d: Json) -> TableFacts:
        return cls(d.get("rows"), d.get("content"), str(d.get("method", Method.COUNT.value)),
                   d.get("last_change"), TableStatus(d.get("status", TableStatus.OK.value)),
                   d.get("reason"), d.get("locator"))


@dataclass(frozen=True)
class Fingerprint:
    """The sealed fingerprint document."""

    taken_at: str                           # ISO time, milliseconds, UTC
    source: Source
    content: bool
    catalog_version: int
    schemas: dict[str, SchemaEntry]
    managed: dict[str, SchemaEntry]
    tables: dict[str, TableFacts]
    partitions: dict[str, list[str]] = field(default_factory=dict)
    sequences: dict[str, SequenceValue] | None = None   # with --content only
    seal: str = ""                          # the checksum of the rest; "" until sealed
    # the objects of the whole database, in no schema (event triggers), as one entry that is
    # never missing; None in a document taken before catalog version 3 described them
    database: SchemaEntry | None = None
    # the collation versions the source recorded (verify/collations.py); None in a document
    # taken before they were, or when they could not be read
    collations: Collations | None = None

    def body(self) -> Json:
        return {"format": FORMAT, "version": VERSION, "taken_at": self.taken_at,
                "source": self.source.to_json(), "content": self.content,
                "catalog_version": self.catalog_version,
                "schemas": {n: e.to_json() for n, e in self.schemas.items()},
                "managed": {n: e.to_json() for n, e in self.managed.items()},
                **({"database": {"checksum": self.database.checksum,
                                 "objects": self.database.objects}}
                   if self.database is not None else {}),
                "tables": {n: t.to_json() for n, t in self.tables.items()},
                "partitions": self.partitions,
                **({"sequences": self.sequences} if self.sequences is not None else {}),
                **({"collations": self.collations.to_json()}
                   if self.collations is not None else {})}

    def sealed(self) -> Fingerprint:
        """The same document with the seal of its contents."""
        from dataclasses import replace

        return replace(self, seal=sha256(canonical(self.body())))

    def to_json(self) -> Json:
        return {**self.body(), "seal": self.seal}

    @classmethod
    def from_json(cls, d: Json) -> Fingerprint:
        return cls(str(d.get("taken_at", "")), Source.from_json(d["source"]),
                   bool(d.get("content", False)), int(d.get("catalog_version", 1)),
                   {n: SchemaEntry.from_json(e) for n, e in d.get("schemas", {}).items()},
                   {n: SchemaEntry.from_json(e) for n, e in d.get("managed", {}).items()},
                   {n: TableFacts.from_json(t) for n, t in d.get("tables", {}).items()},
                   {n: list(v) for n, v in d.get("partitions", {}).items()},
                   d.get("sequences"), str(d.get("seal", "")),
                   SchemaEntry.from_json(d["database"]) if "database" in d else None,
                   Collations.from_json(d["collations"]) if d.get("collations") else None)

