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
import threading
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from queue import Queue
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
    present = _existing_rule_files(folder)
    hashes: dict[str, str] = {}
    writers = _Writers(folder, present)
    try:
        first = canonical({"partner": slug, "corpora": corpora})
        hashes["corpora.json"] = sha(first)
        writers.put("corpora.json", first)
        # jsonb_pretty: one key per line, keys in jsonb's own stable order, done by the server;
        # rows stream through a server-side cursor while the files are being written
        with conn.cursor(name="spectral_export_rules") as cur:
            cur.itersize = 2000
            cur.execute(RULES_SQL, (slug,))
            for corpus, key, doc in cur:
                rel = rule_path(corpus, key)
                data = (doc + "\n").encode()
                hashes[rel] = sha(data)
                writers.put(rel, data)
                result.rules += 1
    finally:
        result.written = writers.close()
    for rel in sorted(present - set(hashes)):
        os.unlink(folder / rel)
        result.removed.append(rel)
    hashes = dict(sorted(hashes.items()))
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


def _existing_rule_files(folder: Path) -> set[str]:
    found: set[str] = {"corpora.json"} if (folder / "corpora.json").exists() else set()
    for root, _dirs, names in os.walk(folder / "rules"):
        rel_root = Path(root).relative_to(folder).as_posix()
        found.update(f"{rel_root}/{n}" for n in names if n.endswith(".json"))
    return found


class _Writers:
    """Two threads writing files, each owning half of the shard directories (no two threads in
    one directory: its lock would serialise them). Only files whose bytes differ are written;
    creating files is most of an export's time on these machines."""

    def __init__(self, folder: Path, present: set[str], threads: int = 2) -> None:
        self.folder = folder
        self.present = present
        self.queues: list[Queue[list[tuple[str, bytes]] | None]] = [Queue(64)
                                                                      for _ in range(threads)]
        self.batches: list[list[tuple[str, bytes]]] = [[] for _ in range(threads)]
        self.written: list[list[str]] = [[] for _ in range(threads)]
        self.made: set[str] = set()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True)
                        for k in range(threads)]
        for t in self.threads:
            t.start()

    def put(self, rel: str, data: bytes) -> None:
        if self.errors:
            raise self.errors[0]
        parent = rel.rpartition("/")[0]
        k = hash(parent) % len(self.queues)
        self.batches[k].append((rel, data))
        if len(self.batches[k]) >= 500:
            self.queues[k].put(self.batches[k])
            self.batches[k] = []

    def close(self) -> list[str]:
        for k, q in enumerate(self.queues):
            if self.batches[k]:
                q.put(self.batches[k])
            q.put(None)
        for t in self.threads:
            t.join()
        if self.errors:
            raise self.errors[0]
        return sorted(rel for part in self.written for rel in part)

    def _run(self, k: int) -> None:
        made: set[str] = set()
        try:
            while (batch := self.queues[k].get()) is not None:
                for rel, data in batch:
                    parent = rel.rpartition("/")[0]
                    if parent and parent not in made:
                        (self.folder / parent).mkdir(parents=True, exist_ok=True)
                        made.add(parent)
                    path = f"{self.folder}/{rel}"
                    if rel in self.present and _same(path, data):
                        continue
                    _write(path, data)
                    self.written[k].append(rel)
        except BaseException as exc:   # reported by put/close in the exporting thread
            self.errors.append(exc)
            while self.queues[k].get() is not None:
                pass


def _same(path: str, data: bytes) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, len(data) + 1) == data
    finally:
        os.close(fd)


def _write(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
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
