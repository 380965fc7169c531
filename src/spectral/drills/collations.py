"""Collations on the restore host: the collation library versions the source recorded in the
snapshot (verify/collations.py) against the versions the copy's server reports
(`pg_database_collation_actual_version`, `pg_collation_actual_version`). A copy restored on a
host whose glibc or ICU sorts differently holds text indexes built under the old order: they
may be silently corrupt (wrong answers, duplicate keys) until REINDEX. A mismatch is a warning
naming the indexes that depend on the collation, or a failure with
`on_collation_mismatch = "fail"`; the copy's data still equals the source's."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from spectral.config.base import OnFinding
from spectral.config.models import EnvironmentConfig
from spectral.drills.result import Check, DrillOutcome
from spectral.errors import SpectralError
from spectral.verify.collations import Collations, CollationVersion
from spectral.verify.reader import Rows

NAME = "collation versions on the restore host"
DATABASE = "default"      # the database's own collation, as the copy's queries name it

ACTUAL_SQL = """
select 'default' as name, pg_database_collation_actual_version(d.oid) as actual
from pg_database d where d.datname = current_database()
union all
select format('%%I.%%I', n.nspname, c.collname) as name, pg_collation_actual_version(c.oid)
from pg_collation c join pg_namespace n on n.oid = c.collnamespace
where format('%%I.%%I', n.nspname, c.collname) = any(%s::text[])
"""
# the indexes (outside the system's schemas) whose key columns use, or whose expressions or
# predicate depend on, one of the named collations ('default': the database's own), found as
# verify/collations.py finds the collations in use
INDEXES_SQL = """
select distinct format('%%I.%%I', n.nspname, ci.relname) as index_name,
       format('%%I.%%I', tn.nspname, t.relname) as table_name, u.name as collation_name
from pg_index i
join pg_class ci on ci.oid = i.indexrelid join pg_namespace n on n.oid = ci.relnamespace
join pg_class t on t.oid = i.indrelid join pg_namespace tn on tn.oid = t.relnamespace
cross join lateral (
  select k.coll from unnest(i.indcollation::oid[]) k(coll)
  union
  select d.refobjid from pg_depend d where d.classid = 'pg_class'::regclass
    and d.objid = i.indexrelid and d.refclassid = 'pg_collation'::regclass
  union
  select m[1]::oid from regexp_matches(
    coalesce(i.indexprs::text, '') || coalesce(i.indpred::text, ''),
    ':(?:inputcollid|collOid) ([0-9]+)', 'g') m) used
join pg_collation c on c.oid = used.coll join pg_namespace cn on cn.oid = c.collnamespace
cross join lateral (select case when c.collprovider = 'd' then 'default'
                           else format('%%I.%%I', cn.nspname, c.collname) end as name) u
where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_toast'
  and u.name = any(%s::text[])
order by 1, 3
"""


@dataclass(frozen=True)
class Mismatch:
    """A collation whose library on the restore host reports another version than the one
    the source recorded."""

    name: str                       # 'default' (the database's), or schema.collation
    recorded: CollationVersion
    actual: str

    def describe(self) -> str:
        source = self.recorded.actual
        return (f"{_what(self.name)} {self.recorded.describe()}: the source recorded version "
                f"{self.recorded.version}, the restore host's library reports {self.actual}"
                + (f" (the source's own reported {source} at the snapshot: its indexes need "
                   f"the REINDEX too)" if source and source != self.recorded.version else ""))


def mismatches(recorded: Collations, actual: dict[str, str | None]) -> list[Mismatch]:
    """The collations whose version on the copy differs from the recorded one. Either side
    unversioned (C and POSIX, a library that reports none) is not a mismatch: PostgreSQL
    itself compares only two versions."""
    wanted = {DATABASE: recorded.database, **recorded.in_use}
    return [Mismatch(name, version, now) for name, version in wanted.items()
            if version.version is not None and (now := actual.get(name)) is not None
            and now != version.version]


def collation_check(env: EnvironmentConfig, recorded: Collations | None, db: Rows) -> Check:
    """The check of a copy `db` against the versions its snapshot recorded."""
    if recorded is None:
        return Check(NAME, DrillOutcome.NOT_CONFIGURED,
                     "the snapshot recorded no collation versions (taken by an older spectral, "
                     "or they could not be read): nothing to compare with")
    try:
        actual = {str(r[0]): None if r[1] is None else str(r[1])
                  for r in db.rows(ACTUAL_SQL, (sorted(recorded.in_use),))}
        found = mismatches(recorded, actual)
        indexes = db.rows(INDEXES_SQL, ([m.name for m in found],)) if found else []
    except (psycopg.Error, SpectralError) as exc:
        said = exc.message if isinstance(exc, SpectralError) else str(exc).strip()
        return Check(NAME, DrillOutcome.WARN, f"could not read the copy's collation versions: "
                                              f"{said}")
    if not found:
        return _matched(recorded, actual)
    outcome = (DrillOutcome.FAIL if env.on_collation_mismatch is OnFinding.FAIL
               else DrillOutcome.WARN)
    names = ", ".join(str(r[0]) for r in indexes) or "none"
    return Check(NAME, outcome,
                 "; ".join(m.describe() for m in found)
                 + f". {len(indexes)} index(es) depend on {'it' if len(found) == 1 else 'them'}"
                   f" and may be silently corrupt until REINDEX: {names}",
                 [m.describe() for m in found]
                 + [f"index {r[0]} on {r[1]} (collation {r[2]})" for r in indexes])


def _matched(recorded: Collations, actual: dict[str, str | None]) -> Check:
    wanted = {DATABASE: recorded.database, **recorded.in_use}
    evidence = [f"{_what(n)} {v.describe()}: recorded {v.version or 'unversioned'}, restore "
                f"host {actual.get(n) or 'unversioned'}" for n, v in wanted.items()]
    versioned = [n for n, v in wanted.items() if v.version is not None and actual.get(n)]
    if not versioned:
        return Check(NAME, DrillOutcome.PASS,
                     f"nothing versioned to compare: the database's collation "
                     f"{recorded.database.describe()} has no library version and no index "
                     f"uses a collation that has one", evidence)
    return Check(NAME, DrillOutcome.PASS,
                 f"{len(versioned)} collation(s) with a library version compared: the restore "
                 f"host's are the ones the source recorded", evidence)


def _what(name: str) -> str:
    return "the database's collation" if name == DATABASE else f"collation {name}"
