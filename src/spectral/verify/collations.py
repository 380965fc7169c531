"""The collation library versions a snapshot records: the database's own collation
(`datcollversion`) and every collation an index depends on (`pg_collation.collversion`), libc
or ICU, each as the catalog recorded it and as the source's library reports it now. A restore
on a host whose glibc or ICU sorts differently can leave text indexes silently corrupt; the
drill compares the copy's library versions with these (drills/collations.py).

PostgreSQL 15 and later record and report the versions; the locale columns differ by release
(`daticulocale` until 16, `datlocale` from 17), so they are read through `to_jsonb`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

Json = dict[str, Any]
PROVIDERS = {"c": "libc", "i": "icu", "b": "builtin", "d": "default"}

DATABASE_SQL = """
select d.datlocprovider::text,
       coalesce(to_jsonb(d)->>'datlocale', to_jsonb(d)->>'daticulocale', d.datcollate::text),
       d.datcollversion, pg_database_collation_actual_version(d.oid)
from pg_database d where d.datname = current_database()
"""
# every collation an index's key columns use, or its expressions and predicate depend on: from
# pg_depend, and from the expression trees' input collations (PostgreSQL records no dependency
# on a collation initdb made, such as the database's default or pg_c_utf8)
IN_USE_SQL = """
with used as (
  select k.coll from pg_index i cross join lateral unnest(i.indcollation::oid[]) k(coll)
  union
  select d.refobjid from pg_depend d join pg_index i on i.indexrelid = d.objid
  where d.classid = 'pg_class'::regclass and d.refclassid = 'pg_collation'::regclass
  union
  select m[1]::oid from pg_index i cross join lateral regexp_matches(
    coalesce(i.indexprs::text, '') || coalesce(i.indpred::text, ''),
    ':(?:inputcollid|collOid) ([0-9]+)', 'g') m
)
select format('%I.%I', n.nspname, c.collname), c.collprovider::text,
       coalesce(to_jsonb(c)->>'colllocale', to_jsonb(c)->>'colliculocale', c.collcollate::text),
       c.collversion, pg_collation_actual_version(c.oid)
from used u join pg_collation c on c.oid = u.coll
join pg_namespace n on n.oid = c.collnamespace
where c.collprovider <> 'd'
  and (c.collversion is not null or pg_collation_actual_version(c.oid) is not null)
order by 1
"""


@dataclass(frozen=True)
class CollationVersion:
    """One collation: its provider and locale, the version the catalog recorded (what the
    indexes were built with, as far as PostgreSQL knows) and the one the library reports."""

    provider: str                   # libc, icu, builtin
    locale: str | None
    version: str | None             # recorded (collversion, datcollversion); None: unversioned
    actual: str | None = None       # the source's library when the snapshot was taken

    def to_json(self) -> Json:
        return {"provider": self.provider, "locale": self.locale, "version": self.version,
                "actual": self.actual}

    @classmethod
    def from_json(cls, d: Json) -> CollationVersion:
        return cls(str(d.get("provider", "")), d.get("locale"), d.get("version"),
                   d.get("actual"))

    def describe(self) -> str:
        return f"{self.locale or '-'} ({self.provider})"


@dataclass(frozen=True)
class Collations:
    """The database's collation and the collations in use by indexes, by qualified name."""

    database: CollationVersion
    in_use: dict[str, CollationVersion] = field(default_factory=dict)

    def to_json(self) -> Json:
        return {"database": self.database.to_json(),
                "in_use": {n: c.to_json() for n, c in self.in_use.items()}}

    @classmethod
    def from_json(cls, d: Json) -> Collations:
        return cls(CollationVersion.from_json(d.get("database") or {}),
                   {str(n): CollationVersion.from_json(c)
                    for n, c in (d.get("in_use") or {}).items()})


def _version(provider: Any, locale: Any, recorded: Any, actual: Any) -> CollationVersion:
    return CollationVersion(PROVIDERS.get(str(provider), str(provider)),
                            None if locale is None else str(locale),
                            None if recorded is None else str(recorded),
                            None if actual is None else str(actual))


def read_collations(conn: psycopg.Connection[Any]) -> Collations | None:
    """The collation versions of the database `conn` is in; None when they cannot be read (a
    server before 15, a library that cannot load a collation): the drill then says so."""
    import psycopg

    try:
        with conn.transaction():
            row = conn.execute(DATABASE_SQL).fetchone()
            used = conn.execute(IN_USE_SQL).fetchall()
    except psycopg.Error:
        return None
    if row is None:
        return None
    return Collations(_version(*row), {str(r[0]): _version(*r[1:]) for r in used})
