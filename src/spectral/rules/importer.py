"""`spectral db import-rules`: regenerate a partner's corpus from its exported files. Everything
is validated first (manifest checksums, shapes, duplicate ids, references), then loaded in one
transaction: all or nothing."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from spectral.errors import CheckFailed, RefusedError, UsageError
from spectral.rules.layout import FORMAT, VERSION, partner_dir


@dataclass(frozen=True)
class Loaded:
    partner: str
    corpora: list[dict[str, Any]]
    rules: list[dict[str, Any]]


def read_folder(root: Path, partner: str) -> Loaded:
    """Read and check an export: every file against the manifest, the manifest's own corpus
    checksum, the counts, the shapes. Any malformed input is one line naming the file."""
    folder = partner_dir(root, partner)
    mpath = folder / "manifest.json"
    if not mpath.is_file():
        raise UsageError(f"{mpath}: no manifest; is this an export of {partner}?")
    manifest = _json(mpath)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT \
            or manifest.get("version") != VERSION:
        raise UsageError(f"{mpath}: not a spectral rules export of format version {VERSION}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in files.items()):
        raise CheckFailed(f"{mpath}: its file list is malformed")
    listed = dict(sorted(files.items()))
    corpus = hashlib.sha256("".join(f"{h}  {rel}\n" for rel, h in listed.items())
                            .encode()).hexdigest()
    if manifest.get("corpus_sha256") != corpus:
        raise CheckFailed(f"{mpath}: corpus_sha256 does not match the files it lists (the "
                          f"manifest was edited or damaged)")
    for rel, expected in listed.items():
        path = _inside(folder, rel, mpath)
        if not path.exists():
            raise CheckFailed(f"{path}: listed in the manifest but missing")
        if not path.is_file():
            raise CheckFailed(f"{path}: listed in the manifest but not a file")
        if hashlib.sha256(path.read_bytes()).hexdigest() != expected:
            raise CheckFailed(f"{path}: its checksum does not match the manifest (edited by "
                              f"hand or damaged)")
    extra = [p for p in (folder / "rules").rglob("*")
             if p.relative_to(folder).as_posix() not in listed and not p.is_dir()] \
        if (folder / "rules").is_dir() else []
    if extra:
        raise CheckFailed(f"{extra[0]}: not in the manifest")
    try:
        corpora = _json(folder / "corpora.json")["corpora"]
        rules = [_json(folder / rel) for rel in listed if rel.startswith("rules/")]
        counts = manifest.get("counts") or {}
        if counts.get("rules", len(rules)) != len(rules) or \
                counts.get("corpora", len(corpora)) != len(corpora):
            raise CheckFailed(f"{mpath}: its counts do not match the files")
        _validate(folder, corpora, rules)
    except (KeyError, TypeError, AttributeError) as exc:
        raise CheckFailed(f"{folder}: a file does not have the export's shape "
                          f"(missing or wrong {exc})") from None
    return Loaded(partner, corpora, rules)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckFailed(f"{path}: missing") from None
    except (IsADirectoryError, UnicodeDecodeError, ValueError) as exc:
        raise CheckFailed(f"{path}: not a JSON file ({type(exc).__name__})") from None


def _inside(folder: Path, rel: str, mpath: Path) -> Path:
    path = (folder / rel)
    if rel.startswith("/") or ".." in Path(rel).parts or \
            not path.resolve().is_relative_to(folder.resolve()):
        raise CheckFailed(f"{mpath}: lists {rel!r}, which is outside the export folder")
    return path


def _validate(folder: Path, corpora: list[dict[str, Any]], rules: list[dict[str, Any]]) -> None:
    slugs = {c["slug"] for c in corpora}
    ids: set[int] = set()
    keys: set[tuple[str, str]] = set()
    for doc in rules:
        rule = doc["rule"]
        if doc["corpus"] not in slugs:
            raise CheckFailed(f"{folder}: rule {rule['rule_key']} belongs to corpus "
                              f"{doc['corpus']}, which corpora.json does not list")
        if rule["id"] in ids:
            raise CheckFailed(f"{folder}: duplicate rule id {rule['id']}")
        ids.add(rule["id"])
        keys.add((doc["corpus"], rule["rule_key"]))
    for doc in rules:
        for ref in doc["references"]:
            if (ref["corpus"], ref["rule_key"]) not in keys:
                raise CheckFailed(f"{folder}: rule {doc['rule']['rule_key']} references "
                                  f"{ref['corpus']}/{ref['rule_key']}, which does not exist")


def load(conn: psycopg.Connection[Any], data: Loaded, *, replace: bool) -> dict[str, int]:
    """Load one partner's corpora in one transaction."""
    with conn.transaction():
        conn.execute("set local timezone = 'UTC'")
        row = conn.execute("select id from core.partners where slug = %s",
                           (data.partner,)).fetchone()
        if row is None:
            raise UsageError(f"partner {data.partner} does not exist in core.partners")
        partner_id = row[0]
        existing = conn.execute("select slug from platform.corpora where partner_id = %s "
                                "and owner = 'partner'", (partner_id,)).fetchall()
        if existing and not replace:
            raise RefusedError(f"{data.partner} already has a corpus here "
                               f"({', '.join(r[0] for r in existing)}); not overwriting it",
                               hint="--replace replaces it")
        conn.execute("delete from platform.corpora where partner_id = %s and owner = 'partner'",
                     (partner_id,))
        corpus_ids = {}
        for c in data.corpora:
            conn.execute("insert into platform.corpora (id, slug, title, owner, partner_id, "
                         "org_id, created_at) overriding system value values "
                         "(%s, %s, %s, 'partner', %s, %s, %s)",
                         (c["id"], c["slug"], c["title"], partner_id, c["org_id"],
                          c["created_at"]))
            corpus_ids[c["slug"]] = c["id"]
        # versions are loaded as exported: the versioning trigger fires only on UPDATE
        with conn.cursor() as cur:
            with cur.copy("COPY platform.rules (id, corpus_id, rule_key, kind, title, body, "
                          "priority, enabled, updated_at) FROM STDIN") as cp:
                for doc in data.rules:
                    r = doc["rule"]
                    cp.write_row((r["id"], corpus_ids[doc["corpus"]], r["rule_key"], r["kind"],
                                  r["title"], Jsonb(r["body"]), r["priority"], r["enabled"],
                                  r["updated_at"]))
            with cur.copy("COPY platform.rule_versions (rule_id, version, body, valid_during) "
                          "FROM STDIN") as cp:
                for doc in data.rules:
                    for v in doc["versions"]:
                        cp.write_row((doc["rule"]["id"], v["version"], Jsonb(v["body"]),
                                      v["valid_during"]))
        ids = {(d["corpus"], d["rule"]["rule_key"]): d["rule"]["id"] for d in data.rules}
        refs = [(d["rule"]["id"], ids[(r["corpus"], r["rule_key"])])
                for d in data.rules for r in d["references"]]
        if refs:
            with conn.cursor() as cur:
                cur.executemany("insert into platform.rule_references values (%s, %s)", refs)
        conn.execute("select setval(pg_get_serial_sequence('platform.rules', 'id'), "
                     "greatest((select max(id) from platform.rules), 1))")
        conn.execute("select setval(pg_get_serial_sequence('platform.corpora', 'id'), "
                     "greatest((select max(id) from platform.corpora), 1))")
    return {"corpora": len(data.corpora), "rules": len(data.rules), "references": len(refs)}
