"""Compare two fingerprints: per schema match or mismatch with object-level differences in
words, per table counts and content, managed schemas as drift; the database's event triggers
each named in a line, those whose function lives in a managed schema as that schema's drift."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from spectral.verify.catalog import ADDED_IN, KINDS_ADDED_IN
from spectral.verify.content import TableStatus
from spectral.verify.document import (
    Fingerprint,
    SchemaEntry,
    SequenceValue,
    TableFacts,
)
from spectral.verify.events import event_trigger_diffs


class Outcome(StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"
    COULD_NOT_VERIFY = "could_not_verify"


KIND_WORDS = {"r": "table", "p": "partitioned table", "f": "foreign table", "v": "view",
              "m": "materialized view"}
SHORT = 60
# attributes whose values are long text: reported as "changed", not quoted in full
LONG = {"definition", "body", "using", "with_check", "columns", "acl", "constraints",
        "attributes", "labels", "settings", "roles", "options", "partition_bound"}
ATTR_WORDS = {"using": "USING", "with_check": "WITH CHECK", "security_definer": "security definer",
              "rls_enabled": "row level security", "rls_forced": "forced row level security",
              "not_null": "not null", "partition_bound": "partition bound",
              "parents": "partition parent"}
ENABLED_WORDS = {"O": "enabled", "D": "disabled", "R": "enabled on replica", "A": "always"}
VOLATILITY = {"i": "immutable", "s": "stable", "v": "volatile"}


@dataclass
class SchemaDiff:
    name: str
    outcome: Outcome
    differences: list[str] = field(default_factory=list)


@dataclass
class TableDiff:
    name: str
    outcome: Outcome
    rows: tuple[int | None, int | None]
    content: tuple[str | None, str | None]
    detail: str = ""


@dataclass
class Comparison:
    schemas: list[SchemaDiff]
    drift: list[SchemaDiff]
    tables: list[TableDiff]
    include_managed: bool = False
    # the event triggers of the whole database whose function is not the platform's
    database: SchemaDiff = field(default_factory=lambda: SchemaDiff("database", Outcome.MATCH))

    @property
    def outcome(self) -> Outcome:
        outcomes = [p.outcome for p in [*self.schemas, self.database,
                                        *(self.drift if self.include_managed else [])]]
        outcomes += [t.outcome for t in self.tables]
        if Outcome.MISMATCH in outcomes:
            return Outcome.MISMATCH
        if Outcome.COULD_NOT_VERIFY in outcomes:
            return Outcome.COULD_NOT_VERIFY
        return Outcome.MATCH

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "schemas": [{"schema": s.name, "outcome": s.outcome.value,
                         "differences": s.differences} for s in self.schemas],
            "drift": [{"schema": s.name, "outcome": s.outcome.value,
                       "differences": s.differences} for s in self.drift],
            "tables": [{"table": t.name, "outcome": t.outcome.value, "rows": list(t.rows),
                        "content": list(t.content), "detail": t.detail} for t in self.tables],
            "database": {"outcome": self.database.outcome.value,
                         "differences": self.database.differences},
        }


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, str):
        text = value if len(value) <= SHORT else value[:SHORT - 3] + "..."
        return " ".join(text.split())
    return str(value)


OBJECT_WORDS = {"r": "tables", "S": "sequences", "f": "functions", "T": "types",
                "n": "schemas"}


def _label(key: str, schema: str | None = None) -> str:
    """'index worlds.returns_status_idx' -> 'worlds.returns_status_idx (index)';
    'default_acl postgres.r' -> 'default privileges on tables created by postgres in schema
    public'."""
    kind, _, name = key.partition(" ")
    if kind == "default_acl":
        role, _, objtype = name.rpartition(".")
        return (f"default privileges on {OBJECT_WORDS.get(objtype, objtype)} created by "
                f"{role}" + (f" in schema {schema}" if schema else ""))
    return f"{name} ({kind})" if kind not in ("table",) else name


def _attr_change(key: str, attr: str, a: Any, b: Any, schema: str | None = None) -> str:
    kind = key.split(" ", 1)[0]
    name = _label(key, schema)
    word = ATTR_WORDS.get(attr, attr)
    if attr == "enabled" and kind == "trigger":
        return f"{name}: {ENABLED_WORDS.get(a, a)} -> {ENABLED_WORDS.get(b, b)}"
    if attr == "volatility":
        return f"{name}: {VOLATILITY.get(a, a)} -> {VOLATILITY.get(b, b)}"
    if attr == "acl":
        lost = sorted(set(a or []) - set(b or []))
        gained = sorted(set(b or []) - set(a or []))
        bits = [f"revoked {g}" for g in lost] + [f"granted {g}" for g in gained]
        return f"{name}: privileges changed ({'; '.join(bits) or 'order'})"
    if attr == "labels" and isinstance(a, list) and isinstance(b, list):
        added = [x for x in b if x not in a]
        removed = [x for x in a if x not in b]
        if added and not removed:
            return f"{name}: enum label(s) added {', '.join(map(repr, added))}"
        if removed and not added:
            return f"{name}: enum label(s) removed {', '.join(map(repr, removed))}"
        return f"{name}: enum labels changed"
    if attr in LONG or (isinstance(a, str) and len(a) > SHORT) or (
            isinstance(b, str) and len(b) > SHORT):
        return f"{name}: {word} changed"
    return f"{name}: {word} {_show(a)} -> {_show(b)}"


def _column_changes(table: str, a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    a_by = {c["name"]: c for c in a}
    b_by = {c["name"]: c for c in b}
    dropped = [c for c in a if c["name"] not in b_by]
    added = [c for c in b if c["name"] not in a_by]
    renamed: set[str] = set()
    for old in dropped:   # same position and type on both sides: a rename, not drop + add
        pos = a.index(old)
        if pos < len(b) and b[pos] in added and {**b[pos], "name": old["name"]} == old:
            out.append(f"{table}.{old['name']}: column renamed to {b[pos]['name']!r}")
            renamed |= {old["name"], b[pos]["name"]}
    out += [f"{table}.{c['name']}: column dropped" for c in dropped if c["name"] not in renamed]
    out += [f"{table}.{c['name']}: column added ({c['type']})" for c in added
            if c["name"] not in renamed]
    for name in [c["name"] for c in a if c["name"] in b_by]:
        ca, cb = a_by[name], b_by[name]
        for attr in sorted(set(ca) | set(cb)):
            if ca.get(attr) != cb.get(attr) and attr != "name":
                word = ATTR_WORDS.get(attr, attr)
                out.append(f"{table}.{name}: {word} {_show(ca.get(attr))} -> "
                           f"{_show(cb.get(attr))}")
    common_a = [c["name"] for c in a if c["name"] in b_by]
    common_b = [c["name"] for c in b if c["name"] in a_by]
    if common_a != common_b:
        out.append(f"{table}: columns reordered ({', '.join(common_a)} -> "
                   f"{', '.join(common_b)})")
    return out


def _object_changes(key: str, a: dict[str, Any], b: dict[str, Any],
                    schema: str | None = None) -> list[str]:
    out: list[str] = []
    for attr in sorted(set(a) | set(b)):
        if a.get(attr) == b.get(attr):
            continue
        if attr == "columns" and key.startswith("table "):
            out += _column_changes(key.split(" ", 1)[1], a.get(attr) or [], b.get(attr) or [])
        else:
            out.append(_attr_change(key, attr, a.get(attr), b.get(attr), schema))
    return out


def _renames(only_a: list[str], only_b: list[str], a: dict[str, Any],
             b: dict[str, Any]) -> list[tuple[str, str]]:
    """Objects that differ only in name (a table or index renamed)."""
    pairs: list[tuple[str, str]] = []
    for ka in only_a:
        for kb in only_b:
            if ka.split(" ")[0] != kb.split(" ")[0] or kb in {p[1] for p in pairs}:
                continue
            strip_a = {k: v for k, v in a[ka].items() if k not in ("name", "definition")}
            strip_b = {k: v for k, v in b[kb].items() if k not in ("name", "definition")}
            if strip_a == strip_b:
                pairs.append((ka, kb))
                break
    return pairs


def diff_schema(name: str, a: SchemaEntry, b: SchemaEntry) -> SchemaDiff:
    if a.missing or b.missing:
        if a.missing and b.missing:   # misspelt, or the wrong database
            return SchemaDiff(name, Outcome.COULD_NOT_VERIFY,
                              [f"schema {name}: exists on neither side, nothing to compare"])
        side = "second" if b.missing else "first"
        return SchemaDiff(name, Outcome.MISMATCH, [f"schema {name}: missing in the {side}"])
    if a.checksum == b.checksum:
        return SchemaDiff(name, Outcome.MATCH)
    oa, ob = a.objects, b.objects
    only_a = sorted(set(oa) - set(ob))
    only_b = sorted(set(ob) - set(oa))
    out: list[str] = []
    for ka, kb in _renames(only_a, only_b, oa, ob):
        out.append(f"{_label(ka)}: renamed to {kb.split(' ', 1)[1]}")
        only_a.remove(ka)
        only_b.remove(kb)
    out += [f"{_label(k, name)}: dropped" for k in only_a]
    out += [f"{_label(k, name)}: added" for k in only_b]
    for key in sorted(set(oa) & set(ob)):
        if oa[key] != ob[key]:
            out += _object_changes(key, oa[key], ob[key], name)
    return SchemaDiff(name, Outcome.MISMATCH, out or ["checksum differs"])


def diff_table(name: str, a: TableFacts | None, b: TableFacts | None,
               content: bool) -> TableDiff:
    if a is None and b is None:
        return TableDiff(name, Outcome.COULD_NOT_VERIFY, (None, None), (None, None),
                         "exists on neither side (misspelt?)")
    if a is None or b is None:
        side = "second" if b is None else "first"
        return TableDiff(name, Outcome.MISMATCH, (a.rows if a else None,
                                                  b.rows if b else None), (None, None),
                         f"missing in the {side}")
    rows = (a.rows, b.rows)
    digests = (a.content, b.content)
    for facts in (a, b):
        if not facts.ok:
            return TableDiff(name, Outcome.COULD_NOT_VERIFY, rows, digests,
                             facts.reason or "could not be read")
    if rows[0] != rows[1]:
        return TableDiff(name, Outcome.MISMATCH, rows, digests,
                         f"rows {rows[0]:,} -> {rows[1]:,}")
    if content:
        if None in digests or a.method != b.method:
            return TableDiff(name, Outcome.COULD_NOT_VERIFY, rows, digests,
                             "content checksum not taken the same way on both sides")
        if digests[0] != digests[1]:
            return TableDiff(name, Outcome.MISMATCH, rows, digests,
                             f"content differs ({rows[0]:,} rows each)")
    return TableDiff(name, Outcome.MATCH, rows, digests)


def compare(fa: Fingerprint, fb: Fingerprint, *, include_managed: bool = False,
            tables: list[str] | None = None, content: bool | None = None) -> Comparison:
    """`tables` limits the table checks (a drill's spot-check); content is compared when both
    fingerprints carry it, unless `content` says otherwise."""
    seen = min(fa.catalog_version, fb.catalog_version)
    fa, fb = _common_catalog(fa, seen), _common_catalog(fb, seen)
    missing = SchemaEntry(True, None)
    sdiffs = [diff_schema(s, fa.schemas.get(s, missing), fb.schemas.get(s, missing))
              for s in sorted(set(fa.schemas) | set(fb.schemas))]
    drift = [diff_schema(s, fa.managed.get(s, missing), fb.managed.get(s, missing))
             for s in sorted(set(fa.managed) | set(fb.managed))]
    database = _database(fa, fb, drift)
    use_content = (fa.content and fb.content) if content is None else content
    names = tables if tables is not None else sorted(set(fa.tables) | set(fb.tables))
    tdiffs = [diff_table(t, _facts(fa, t), _facts(fb, t),
                         bool(use_content) and t in fa.tables and t in fb.tables)
              for t in names]
    if use_content and tables is None and fa.sequences is not None and \
            fb.sequences is not None:
        tdiffs += _sequence_diffs(fa.sequences, fb.sequences)
    return Comparison(sdiffs, drift, tdiffs, include_managed, database)


def _database(fa: Fingerprint, fb: Fingerprint, drift: list[SchemaDiff]) -> SchemaDiff:
    """The event triggers' differences: the platform's (their function in a managed schema)
    first among that schema's drift, the others as the database's."""
    empty = SchemaEntry(False, None)
    platform = set(fa.managed) | set(fb.managed)
    ours, theirs = event_trigger_diffs((fa.database or empty).objects,
                                       (fb.database or empty).objects, platform)
    by_name = {d.name: d for d in drift}
    for schema, lines in sorted(theirs.items()):
        entry = by_name.get(schema)
        if entry is None:
            entry = by_name[schema] = SchemaDiff(schema, Outcome.MATCH)
            drift.append(entry)
        entry.outcome = Outcome.MISMATCH
        entry.differences[:0] = lines
    drift.sort(key=lambda d: d.name)
    return SchemaDiff("database", Outcome.MISMATCH if ours else Outcome.MATCH, ours)


def table_facts(doc: Fingerprint, name: str) -> TableFacts | None:
    """A table's facts as a comparison reads them (a partitioned parent's summed up)."""
    return _facts(doc, name)


def _facts(doc: Fingerprint, name: str) -> TableFacts | None:
    """A table's facts; for a partitioned parent, its leaf partitions' rows added up."""
    if name in doc.tables:
        return doc.tables[name]
    leaves = doc.partitions.get(name)
    if leaves is None:
        return None
    parts = [doc.tables.get(leaf) for leaf in leaves]
    bad = [f for f in parts if f is None or not f.ok]
    if bad:
        return TableFacts(None, None, "partitions", status=TableStatus.COULD_NOT_VERIFY,
                          reason="a partition could not be read")
    return TableFacts(sum(f.rows or 0 for f in parts if f is not None), None, "partitions")


def _common_catalog(doc: Fingerprint, version: int) -> Fingerprint:
    """`doc` described as catalog `version` describes: the properties a later version added
    are taken out, so an older snapshot compares with a newer fingerprint on what both saw."""
    if version >= doc.catalog_version:
        return doc
    later = {k for added, ks in KINDS_ADDED_IN.items() if added > version for k in ks}
    drop: dict[str, set[str]] = {}
    for added, kinds in ADDED_IN.items():
        if added > version:
            for kind, keys in kinds.items():
                drop.setdefault(kind, set()).update(keys)

    def strip_object(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        out = {a: v for a, v in obj.items() if a not in drop.get(kind, ())}
        if kind == "table" and isinstance(out.get("columns"), list):
            out["columns"] = [{a: v for a, v in c.items() if a not in drop.get("column", ())}
                              for c in out["columns"]]
        return out

    def strip(entry: SchemaEntry) -> SchemaEntry:
        if entry.missing:
            return entry
        return SchemaEntry.of({k: strip_object(k.split(" ")[0], o)
                               for k, o in entry.objects.items()
                               if k.split(" ")[0] not in later})

    return replace(doc, catalog_version=version,
                   schemas={n: strip(e) for n, e in doc.schemas.items()},
                   managed={n: strip(e) for n, e in doc.managed.items()},
                   database=None if doc.database is None else strip(doc.database))


def _sequence_diffs(a: dict[str, SequenceValue],
                    b: dict[str, SequenceValue]) -> list[TableDiff]:
    """A copy's sequence may be ahead of its source (PostgreSQL logs sequences ahead of use),
    never behind: behind, the next insert collides with a restored key."""
    out = []
    for name in sorted(set(a) & set(b)):
        was, now = a[name], b[name]
        if isinstance(was, str) or isinstance(now, str):     # "unreadable"
            out.append(TableDiff(f"sequence {name}", Outcome.COULD_NOT_VERIFY, (None, None),
                                 (None, None), "no privilege to read its value"))
            continue
        behind = was is not None and (now is None or now < was)
        out.append(TableDiff(f"sequence {name}", Outcome.MISMATCH if behind else Outcome.MATCH,
                             (was, now), (None, None),
                             f"last value {was} -> {now}: behind" if behind else ""))
    return out
