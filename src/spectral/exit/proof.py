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
        self.owner_map = {o: facts.user for o in _owners(report)}
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
                   SchemaEntry.of({k: self._object(k, o) for k, o in entry.objects.items()})
                   for name, entry in doc.schemas.items()}
        # shims live in the managed schemas: not part of the proof
        return replace(doc, schemas=schemas, managed={}).sealed()

    def _object(self, key: str, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        kind = key.split(" ")[0]
        if isinstance(obj.get("owner"), str):
            obj["owner"] = self.owner_map.get(obj["owner"], obj["owner"])
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

    def _acl(self, items: list[str]) -> list[str]:
        out = []
        for item in items:
            parts = item.split(":")
            if len(parts) >= 2 and parts[1] in self.dropped:
                continue
            parts = [self.owner_map.get(p, p) if i in (0, 2) else p
                     for i, p in enumerate(parts)]
            out.append(":".join(parts))
        return out


def _owners(report: Report) -> list[str]:
    return [n.strip() for i in report.items if i.kind == "owner" for n in i.name.split(",")]


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
