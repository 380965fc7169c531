"""`spectral db export-rules`: a partner's corpora as one canonical JSON file per rule, plus a
manifest with counts and a SHA-256 per file and for the whole corpus.

Read in one repeatable-read snapshot, so concurrent writers never produce a torn export.
Files are compared before writing: an unchanged corpus changes no file, one changed rule
rewrites only its file and the manifest. The files are synced once, and the manifest, written
last and atomically, is the commit point an import checks against."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import psycopg

from spectral.durable import write_atomic
from spectral.errors import UsageError
from spectral.rules.layout import FORMAT, VERSION, partner_dir, rule_path

CORPORA_SQL = """
select p.slug as partner, p.name as partner_name, p.onboarded_on,
       coalesce(jsonb_agg(to_jsonb(c) - 'partner_id' order by c.slug)
                filter (where c.id is not null), '[]') as corpora
from core.partners p
left join platform.corpora c on c.partner_id = p.id and c.owner = 'partner'
where p.slug = any(%s)
group by p.slug, p.name, p.onboarded_on
order by p.slug
"""

RULES_SQL = """
select c.slug as corpus, r.rule_key,
       jsonb_pretty(jsonb_build_object(
         'rule', to_jsonb(r) - 'corpus_id',
         'corpus', c.slug,
         'versions', coalesce((select jsonb_agg(to_jsonb(v) - 'rule_id' order by v.version)
                               from platform.rule_versions v where v.rule_id = r.id), '[]'),
         'references', coalesce((select jsonb_agg(jsonb_build_object('corpus', tc.slug,
                                                                       'rule_key', t.rule_key)
                                                  order by tc.slug, t.rule_key)
                                 from platform.rule_references x
                                 join platform.rules t on t.id = x.references_id
                                 join platform.corpora tc on tc.id = t.corpus_id
                                 where x.rule_id = r.id), '[]'))) as doc
from platform.rules r join platform.corpora c on c.id = r.corpus_id
join core.partners p on p.id = c.partner_id
where p.slug = %s and c.owner = 'partner'
order by c.slug, r.rule_key
"""


def canonical(doc: Any) -> bytes:
    return (json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class PartnerExport:
    partner: str
    corpora: int = 0
    rules: int = 0
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    corpus_sha256: str = ""
    readme_created: bool = False


def partners_with_corpora(conn: psycopg.Connection[Any]) -> list[str]:
    return [r[0] for r in conn.execute(
        "select distinct p.slug from core.partners p join platform.corpora c "
        "on c.partner_id = p.id and c.owner = 'partner' order by 1")]


def export(conninfo_conn: psycopg.Connection[Any], partners: list[str] | None,
           out: Path) -> list[PartnerExport]:
    """Export the named partners (None: every partner with a corpus) in one snapshot."""
    conn = conninfo_conn
    with conn.transaction():
        conn.execute("set transaction isolation level repeatable read, read only")
        conn.execute("set local timezone = 'UTC'")
        names = partners if partners is not None else partners_with_corpora(conn)
        heads = {r[0]: r for r in conn.execute(CORPORA_SQL, (names,))}
        unknown = [p for p in names if p not in heads]
        if unknown:
            raise UsageError(f"unknown partner {', '.join(unknown)} (core.partners has no such "
                             f"slug)")
        results = []
        for slug in names:
            results.append(_export_one(conn, heads[slug], out))
    os.sync()   # every rule file on disk before the manifests count as written
    return results


def _export_one(conn: psycopg.Connection[Any], head: tuple[Any, ...], out: Path) -> PartnerExport:
    slug, name, onboarded, corpora = head
    folder = partner_dir(out, slug)
    folder.mkdir(parents=True, exist_ok=True)
    result = PartnerExport(slug, corpora=len(corpora))
    files: dict[str, bytes] = {"corpora.json": canonical({"partner": slug, "corpora": corpora})}
    # jsonb_pretty: one key per line, keys in jsonb's own stable order, done by the server
    for corpus, key, doc in conn.execute(RULES_SQL, (slug,)):
        files[rule_path(corpus, key)] = (doc + "\n").encode()
        result.rules += 1
    for parent in {(folder / rel).parent for rel in files}:
        parent.mkdir(parents=True, exist_ok=True)
    result.written = _write_changed(folder, files)
    rules_dir = folder / "rules"
    for corpus_dir in (list(os.scandir(rules_dir)) if rules_dir.is_dir() else []):
        for item in os.scandir(corpus_dir.path):
            rel = f"rules/{corpus_dir.name}/{item.name}"
            if rel not in files:
                os.unlink(item.path)
                result.removed.append(rel)
    hashes = {rel: sha(data) for rel, data in sorted(files.items())}
    result.corpus_sha256 = sha("".join(f"{h}  {rel}\n" for rel, h in hashes.items()).encode())
    manifest = canonical({"format": FORMAT, "version": VERSION, "partner": slug,
                          "counts": {"corpora": len(corpora), "rules": result.rules},
                          "files": hashes, "corpus_sha256": result.corpus_sha256})
    mpath = folder / "manifest.json"
    if not mpath.exists() or mpath.read_bytes() != manifest:
        write_atomic(mpath, manifest)
        result.written.append("manifest.json")
    readme = folder / "README.md"
    if not readme.exists():
        write_atomic(readme, _readme(slug, name, onboarded))
        result.readme_created = True
    return result


def _write_changed(folder: Path, files: dict[str, bytes]) -> list[str]:
    """Write the files whose content differs. On a 100,000-rule corpus creating the files is
    most of the time, so this works directory by directory with openat(2) on plain names and
    only reads files that already exist."""
    by_dir: dict[str, list[str]] = {}
    for rel in files:
        parent, _, name = rel.rpartition("/")
        by_dir.setdefault(parent, []).append(name)
    written = []
    for parent, names in by_dir.items():
        directory = folder / parent if parent else folder
        present = {e.name for e in os.scandir(directory)}
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for name in names:
                rel = f"{parent}/{name}" if parent else name
                data = files[rel]
                if name in present and _same(dfd, name, data):
                    continue
                _write(dfd, name, data)
                written.append(rel)
        finally:
            os.close(dfd)
    return written


def _same(dfd: int, name: str, data: bytes) -> bool:
    fd = os.open(name, os.O_RDONLY, dir_fd=dfd)
    try:
        return os.read(fd, len(data) + 1) == data
    finally:
        os.close(fd)


def _write(dfd: int, name: str, data: bytes) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=dfd)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _readme(slug: str, name: str, onboarded: date | None) -> str:
    return f"""# Rule corpus of {name} (`{slug}`)

- Partner: {name} (`{slug}`)
- Onboarding date: {onboarded.isoformat() if onboarded else "not recorded in core.partners"}
- Data owner: the partner. This corpus is load-bearing and is not regenerable from the seed: this
  folder is its second, independent recovery path (ADR-040 D3).

## Regeneration procedure

Into a database where the reference schemas exist (for example after `spectral db reseed`):

```
spectral db import-rules --partner {slug} --from data/rules/
```

`--replace` overwrites a corpus that is already there. The import checks every file against
`manifest.json` first and loads all or nothing.

## Keeping it current

`spectral db rules-hook install` adds triggers that announce every change to the rule tables;
`spectral db watch-rules --partner {slug} --commit` re-exports on each change and commits it.
`spectral db export-rules --partner {slug}` re-exports by hand; an unchanged corpus changes no file.

This README is created once and never overwritten: edit it freely.
"""
