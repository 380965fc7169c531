"""Physical checks of a data directory, as command lines and readers of what they print (pure;
unit-tested): pg_amcheck on a running server (B-tree indexes and heap tables, every database),
pg_checksums --check on a stopped one. Both name relation and block; a file path is named by the
relation that owns it (`FileMap`, read from the server while it runs).

https://www.postgresql.org/docs/current/app-pgamcheck.html
https://www.postgresql.org/docs/current/app-pgchecksums.html"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from spectral.pg.binaries import PgBinaries

RELSEG_BLOCKS = 131072       # blocks per 1 GB segment file (the default build's RELSEG_SIZE)

# a relation's own files: base/<database oid>/<relfilenode>[_fsm|_vm|_init][.<segment>]
FileMap = Mapping[str, str]   # "base/5/16384" -> "shop.public.orders"


def amcheck_argv(bins: PgBinaries, conn: Mapping[str, object], *, thorough: bool) -> list[str]:
    """Every database of the server, amcheck installed where missing (a throwaway copy: never
    the source). `thorough` adds the checks that read every heap tuple against every index
    (--heapallindexed) and each B-tree page against its parent (--parent-check: ShareLock)."""
    argv = [bins.path("pg_amcheck"), "--all", "--install-missing", "--no-password",
            f"--maintenance-db={conn.get('dbname', 'postgres')}"]
    for flag, key in (("--host", "host"), ("--port", "port"), ("--username", "user")):
        if conn.get(key):
            argv.append(f"{flag}={conn[key]}")
    if thorough:
        argv += ["--heapallindexed", "--parent-check"]
    return argv


def checksums_argv(bins: PgBinaries, data_dir: Path) -> list[str]:
    return [bins.path("pg_checksums"), "--check", "--pgdata", str(data_dir)]


_HEADER = re.compile(r'^(?P<kind>heap table|btree index) "(?P<rel>[^"]+)"'
                     r'(?:, block (?P<block>\d+))?(?:, offset (?P<offset>\d+))?'
                     r'(?:, attribute (?P<attr>\d+))?:\s*(?P<rest>.*)$')
_TID = re.compile(r"tid=\((?P<block>\d+),\d+\)")
_IN_BLOCK = re.compile(r'\bblock (?P<block>\d+) of relation "?(?P<path>[^"\s;]+)')
_BLOCK = re.compile(r"\bblock (?P<block>\d+)\b")


def amcheck_findings(out: str, files: FileMap) -> list[str]:
    """pg_amcheck's report, one line per damaged place: `btree index "db.s.i", block 3: item
    order invariant violated ...`. A message without a block (an ERROR from the check itself)
    takes the first block it names (a TID's, or "block N of relation base/..")."""
    found: list[str] = []
    current: re.Match[str] | None = None
    lines: list[str] = []

    def close() -> None:
        if current is not None:
            found.append(_amcheck_line(current, " ".join(lines), files))

    for raw in out.splitlines():
        if m := _HEADER.match(raw.strip()):
            close()
            current, lines = m, [m.group("rest")] if m.group("rest") else []
        elif current is not None and raw.strip() and not raw.startswith("pg_amcheck:"):
            text = raw.strip()
            if not text.startswith(("query was:", "CONTEXT:", "HINT:")):
                lines.append(text)
    close()
    return found


def _amcheck_line(m: re.Match[str], message: str, files: FileMap) -> str:
    message = re.sub(r"\s+", " ", message).strip()
    block, offset = m.group("block"), m.group("offset")
    if block is None:
        found = _TID.search(message) or _IN_BLOCK.search(message) or _BLOCK.search(message)
        block = found.group("block") if found else None
    where = f'{m.group("kind")} "{m.group("rel")}"'
    if block is not None:
        where += f", block {block}" + (f", offset {offset}" if offset else "")
    if inner := _IN_BLOCK.search(message):
        named = relation_of(inner.group("path"), files)
        if named != inner.group("path"):
            message += f" ({named})"
    return f"{where}: {message or 'corrupt'}"


_CHECKSUM_FAILED = re.compile(r'checksum verification failed in file "(?P<file>[^"]+)", '
                              r"block (?P<block>\d+): (?P<what>.*)$")


def checksum_findings(err: str, data_dir: Path, files: FileMap) -> list[str]:
    """pg_checksums' failures, relation and block named: `shop.public.orders (base/5/16384),
    block 0: calculated checksum 9B1A but block contains 1C2D`."""
    out = []
    for line in err.splitlines():
        if m := _CHECKSUM_FAILED.search(line):
            path = m.group("file")
            if path.startswith(str(data_dir)):
                path = path[len(str(data_dir)):].lstrip("/")
            rel, segment = _segment(path)
            block = int(m.group("block")) + segment * RELSEG_BLOCKS
            out.append(f"{relation_of(rel, files)}, block {block}: {m.group('what').strip()}")
    return out


def _segment(path: str) -> tuple[str, int]:
    base, _, seg = path.rpartition(".")
    return (base, int(seg)) if base and seg.isdigit() else (path, 0)


def relation_of(path: str, files: FileMap) -> str:
    """The relation a file belongs to (`db.schema.table (base/5/16384)`, its free space map
    or visibility map named so), or the path itself when the map does not know it."""
    path, _ = _segment(path)
    m = re.fullmatch(r"(?P<main>.+?)(?:_(?P<fork>fsm|vm|init))?", path)
    assert m is not None
    name = files.get(m.group("main"))
    if name is None:
        return path
    fork = {"fsm": " free space map", "vm": " visibility map", "init": " init fork"}
    return f"{name}{fork.get(m.group('fork') or '', '')} ({path})"


FILE_MAP_SQL = ("select pg_relation_filepath(c.oid), format('%s.%I.%I', current_database(), "
                "n.nspname, c.relname) from pg_class c join pg_namespace n "
                "on n.oid = c.relnamespace where pg_relation_filepath(c.oid) is not null")
