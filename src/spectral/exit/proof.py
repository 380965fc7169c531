"""The proof of an exit: the source's fingerprint, with the planned differences applied and
listed, compared with the target's; nothing else may differ.

Planned differences, each from the portability report or from PostgreSQL's documented
behaviour: objects owned by the target's role instead of the source's owner (and privileges
granted by it); privileges the target's major version does not have dropped (MAINTAIN before
17); extensions at the target's version; and, across major versions, view definitions compared
without the column qualification PostgreSQL 16 stopped printing for views over one relation
(`SELECT u.id FROM core.users u` is `SELECT id FROM core.users u`: the same query)."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from typing import Any

from spectral.exit.portability import Plan, Report
from spectral.verify.compare import Comparison, compare
from spectral.verify.document import Fingerprint, SchemaEntry

_KEYWORDS = {"WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "WINDOW", "UNION",
             "INTERSECT", "EXCEPT", "FETCH", "FOR"}
_FROM_ITEM = re.compile(r"\bFROM\s+((?:\"[^\"]+\"|\w+)\.(?:\"[^\"]+\"|\w+))(?:\s+(\w+))?",
                        re.IGNORECASE)


def unqualified_view(definition: str) -> str:
    """A view over exactly one relation, its columns written without the relation's name or
    alias (as PostgreSQL 16 and later print it); any other definition as it is."""
    upper = definition.upper()
    if upper.count("SELECT") != 1 or upper.count("FROM") != 1 or \
            re.search(r"\bJOIN\b", definition, re.IGNORECASE):
        return definition
    found = _FROM_ITEM.search(definition)
    if found is None:
        return definition
    names = {found.group(1).split(".")[-1].strip('"')}
    if found.group(2) and found.group(2).upper() not in _KEYWORDS:
        names.add(found.group(2))
    prefix = re.compile(r"(?<![\w.\"])(" + "|".join(re.escape(n) for n in sorted(names)) +
                        r")\.(?=[\w\"])")
    return (prefix.sub("", definition[:found.start()]) + definition[found.start():found.end()]
            + prefix.sub("", definition[found.end():]))


class Planned:
    """The planned differences of one exit, applied to a fingerprint document."""

    def __init__(self, report: Report, target_doc: Fingerprint) -> None:
        self.report = report
        facts = report.target
        assert facts is not None
        self.owner_map = report.role_map
        self.default_roles = {i.name.split(" created by ", 1)[1].split(" in schema ")[0]:
                              facts.user for i in report.items
                              if i.kind == "default privileges" and i.plan is Plan.MAP}
        self.dropped = {i.name for i in report.items
                        if i.kind == "privilege" and i.plan is Plan.LEAVE_OUT}
        self.cross_version = (report.source_version_num // 10000) != facts.major
        self.extension_versions = _extension_versions(target_doc)
        self.applied: list[str] = []

    def describe(self) -> list[str]:
        lines = [f"owner {a} -> {b} (objects created by the target's role)"
                 for a, b in self.owner_map.items()]
        lines += [f"privilege {p} dropped (PostgreSQL {self.report.target.major} has none)"
                  for p in sorted(self.dropped) if self.report.target]
        lines += [f"extension {n} at {v} on the target" for n, v in
                  sorted(self.extension_versions.items())]
        if self.cross_version:
            lines.append("view definitions compared without single-relation column "
                         "qualification (PostgreSQL 16 stopped printing it)")
        return lines

    def apply(self, doc: Fingerprint) -> Fingerprint:
        schemas = {name: entry if entry.missing else
                   SchemaEntry.of(self._defaults({k: self._object(k, o)
                                                  for k, o in entry.objects.items()}))
                   for name, entry in doc.schemas.items()}
        # shims live in the managed schemas, event triggers are left out (portability): neither
        # is part of the proof
        return replace(doc, schemas=schemas, managed={}, database=None).sealed()

    def _object(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        kind = key.split(" ")[0]
        if isinstance(obj.get("owner"), str):
            obj["owner"] = self.owner_map.get(obj["owner"], obj["owner"])
        if kind == "table":   # publications are left out (the report): never on the target
            obj.pop("publications", None)
        if kind == "policy" and isinstance(obj.get("roles"), list):
            obj["roles"] = sorted({self.owner_map.get(r, r) for r in obj["roles"]})
        for field_name in ("acl",):
            if isinstance(obj.get(field_name), list):
                obj[field_name] = sorted(self._acl(obj[field_name]))
        for column in obj.get("columns") or []:
            if isinstance(column, dict) and isinstance(column.get("acl"), list):
                column["acl"] = sorted(self._acl(column["acl"]))
        if kind == "extension" and obj.get("name") in self.extension_versions:
            obj["version"] = self.extension_versions[obj["name"]]
        if self.cross_version and kind in ("view", "materialized") and \
                isinstance(obj.get("definition"), str):
            obj["definition"] = unqualified_view(obj["definition"])
        return obj

    def _defaults(self, objects: dict[str, Any]) -> dict[str, Any]:
        """Default privileges set for the target's user instead of their roles: one entry
        per (role, kind of object) after the mapping, privileges merged per grantee."""
        roles = {**self.owner_map, **self.default_roles}
        out = {k: o for k, o in objects.items() if not k.startswith("default_acl ")}
        for key, obj in sorted(objects.items()):
            if not key.startswith("default_acl "):
                continue
            role = roles.get(str(obj.get("role")), str(obj.get("role")))
            merged = out.setdefault(f"default_acl {role}.{obj.get('objtype')}",
                                    {**obj, "role": role, "acl": []})
            merged["acl"] = default_acl([*merged["acl"], *(obj.get("acl") or [])], roles,
                                        {LETTERS[p] for p in self.dropped if p in LETTERS})
        return out

    def _acl(self, items: list[str]) -> list[str]:
        out = []
        for item in items:
            parts = item.split(":")
            if len(parts) >= 2 and parts[1] in self.dropped:
                continue
            parts = [self.owner_map.get(p, p) if i in (0, 2) else p
                     for i, p in enumerate(parts)]
            out.append(":".join(parts))
        # mapped roles can coincide: privileges are a set, and one held with its grant option
        # once is held so (PostgreSQL keeps one entry per grantee and grantor)
        held = set(out)
        return sorted(i for i in held if f"{i}:grantable" not in held)


LETTERS = {"INSERT": "a", "SELECT": "r", "UPDATE": "w", "DELETE": "d", "TRUNCATE": "D",
           "REFERENCES": "x", "TRIGGER": "t", "MAINTAIN": "m", "EXECUTE": "X", "USAGE": "U",
           "CREATE": "C"}
_ACLITEM = re.compile(r'^(?P<to>"(?:[^"]|"")*"|[^=]*)=(?P<what>[A-Za-z*]*)/(?P<by>.*)$')


def default_acl(items: list[str], roles: dict[str, str], dropped: set[str]) -> list[str]:
    """aclitem texts (`anon=arwd/postgres`) with their roles mapped, the privileges the
    target lacks removed and one item per grantee and grantor: what PostgreSQL holds for
    the same grants made by the mapped role."""
    held: dict[tuple[str, str], set[str]] = {}
    for item in items:
        found = _ACLITEM.match(item)
        if found is None:
            held.setdefault((item, ""), set())
            continue
        to, by = (roles.get(n.strip('"'), n.strip('"')) for n in (found["to"], found["by"]))
        letters = held.setdefault((to, by), set())
        for grant in re.findall(r"[A-Za-z]\*?", found["what"]):
            if grant[0] not in dropped:
                letters.add(grant)
    return sorted(f"{to}={''.join(sorted(what))}/{by}" if by else to
                  for (to, by), what in held.items() if what or not by)


def _extension_versions(doc: Fingerprint) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in doc.schemas.values():
        for key, obj in entry.objects.items():
            if key.startswith("extension ") and isinstance(obj, dict) and obj.get("version"):
                found[str(obj.get("name"))] = str(obj["version"])
    return found


def prove(report: Report, source_doc: Fingerprint, target_doc: Fingerprint
          ) -> tuple[Comparison, list[str]]:
    """The comparison of the source, as planned, with the target; and the planned lines."""
    planned = Planned(report, target_doc)
    expected = planned.apply(source_doc)
    return compare(expected, planned.apply(target_doc), content=True), planned.describe()
