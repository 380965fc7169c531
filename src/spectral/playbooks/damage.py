"""`spectral dr find-damage`: the transactions that deleted, updated or truncated a table, read
from the WAL (pg_waldump), each with the exact target just before it.

The table's storage history is followed backwards through rewrites: a TRUNCATE, VACUUM FULL or
CLUSTER creates a new relfilenode in a transaction whose commit drops the old one; a rewrite that
writes no rows into the new file is a TRUNCATE (damage), one that does is a VACUUM FULL or
CLUSTER (not damage, but the history continues through it). Recent WAL is archived first by
switching the segment when the server is up."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from spectral.errors import UsageError
from spectral.pg.waldump import CommitRecord, format_lsn, parse_commit_line, parse_lsn
from spectral.providers.base import WalArchive
from spectral.recovery_target import RecoveryTarget, TargetKind, TimeTarget

HEAP_RE = re.compile(r"rmgr: Heap2?\s.*?tx:\s+(?P<xid>\d+), lsn: (?P<lsn>\S+),.*?desc: "
                     r"(?P<op>DELETE|UPDATE|HOT_UPDATE|INSERT\+INIT|INSERT|MULTI_INSERT\+INIT|"
                     r"MULTI_INSERT)(?P<rest>.*)$")
BLKREF_RE = re.compile(r"blkref #(\d+): rel (\d+/\d+/\d+)(?: fork \w+)? blk (\d+)")
# PostgreSQL 16+ prints "off: 7" and "old_off: 3"; 15 prints "off 7" and, for an update,
# "off 3 xmax ... ; new off 11" (the first is the old tuple's)
OFF_RE = re.compile(r"\boff:? (\d+)")
OLD_OFF_RE = re.compile(r"\bold_off: (\d+)")
CREATE_RE = re.compile(r"rmgr: Storage\s.*?tx:\s+(?P<xid>\d+),.*desc: CREATE (?P<path>\S+)")
RELS_RE = re.compile(r"rels: ((?:\S+/\d+/\d+\s?)+)")


@dataclass
class Damage:
    xid: int
    op: str                     # delete | update | truncate | drop
    rows: int
    commit_time: datetime | None = None
    commit_lsn: str | None = None
    tuples: list[tuple[int, int]] = field(default_factory=list)   # (block, offset) touched

    @property
    def target(self) -> str:
        return f"--target-xid {self.xid} --exclusive"

    def to_json(self) -> dict[str, Any]:
        return {"xid": self.xid, "op": self.op, "rows": self.rows,
                "commit_time": self.commit_time.isoformat() if self.commit_time else None,
                "commit_lsn": self.commit_lsn, "target": self.target}


@dataclass
class _Scan:
    heap: dict[int, list[tuple[str, str, int, int]]] = field(default_factory=dict)
    creates: dict[str, int] = field(default_factory=dict)           # path -> xid
    commits: dict[int, tuple[bool, datetime, int, list[str]]] = field(default_factory=dict)
    touched: dict[int, set[str]] = field(default_factory=dict)      # xid -> relations written
    ends: list[CommitRecord] = field(default_factory=list)           # in WAL order


TX_RE = re.compile(r"tx:\s+(\d+),")
LSN_RE = re.compile(r"lsn: ([0-9A-F]+/[0-9A-F]+)")


def _parse(lines: Iterable[str], scan: _Scan) -> None:
    for line in lines:
        tx = TX_RE.search(line)
        if tx and tx.group(1) != "0":
            for _n, rel, _blk in BLKREF_RE.findall(line):   # heap rows, full-page images, ...
                scan.touched.setdefault(int(tx.group(1)), set()).add(rel)
        if m := HEAP_RE.search(line):
            refs = BLKREF_RE.findall(line)
            if not refs:
                continue
            op, rest = m.group("op"), m.group("rest")
            xid = int(m.group("xid"))
            if op in ("DELETE",):
                off = OFF_RE.search(rest)
                scan.heap.setdefault(xid, []).append(("delete", refs[0][1], int(refs[0][2]),
                                                      int(off.group(1)) if off else 0))
            elif op in ("UPDATE", "HOT_UPDATE"):
                off = OLD_OFF_RE.search(rest) or OFF_RE.search(rest)
                ref = refs[1] if len(refs) > 1 else refs[0]   # #1 is the old block when moved
                scan.heap.setdefault(xid, []).append(("update", ref[1], int(ref[2]),
                                                      int(off.group(1)) if off else 0))
            else:
                scan.heap.setdefault(xid, []).append(("insert", refs[0][1], int(refs[0][2]), 0))
        elif m := CREATE_RE.search(line):
            scan.creates[_locator(m.group("path"))] = int(m.group("xid"))
        elif (rec := parse_commit_line(line)) is not None:
            rels = RELS_RE.search(line)
            scan.commits[rec.xid] = (rec.committed, rec.time, rec.lsn,
                                     [_locator(p) for p in rels.group(1).split()] if rels else [])
            scan.ends.append(rec)
            if rec.committed:
                _fold_subxacts(scan, rec)


def _fold_subxacts(scan: _Scan, rec: CommitRecord) -> None:
    """A subtransaction's changes (a savepoint's) are written under its own xid and committed
    by the top-level transaction's commit record, which names it: they are that transaction's
    (recovery targets, too, name only the top-level xid). Its records all precede the commit."""
    for sub in rec.subxacts:
        if sub in scan.heap:
            scan.heap.setdefault(rec.xid, []).extend(scan.heap.pop(sub))
        if sub in scan.touched:
            scan.touched.setdefault(rec.xid, set()).update(scan.touched.pop(sub))
    subs = set(rec.subxacts)
    if subs:
        for path, xid in scan.creates.items():
            if xid in subs:
                scan.creates[path] = rec.xid


def _locator(path: str) -> str:
    """'base/5/17705' -> '1663/5/17705'; 'pg_tblspc/16400/PG_18_x/5/17705' -> '16400/5/17705'."""
    parts = path.split("/")
    if parts[0] == "base":
        return f"1663/{parts[1]}/{parts[2]}"
    if parts[0] == "global":
        return f"1664/0/{parts[1]}"
    return f"{parts[1]}/{parts[-2]}/{parts[-1]}" if len(parts) >= 4 else path


def scan_archive(archive: WalArchive) -> _Scan:
    """The whole live lineage read as one stream: a record that crosses a segment boundary (a
    large DELETE's) is read whole, never lost between two segments."""
    scan = _Scan()
    _parse(archive.waldump(), scan)
    return scan


def _unknown_drop(scan: _Scan, table: str, since: datetime | None) -> UsageError:
    """A dropped table no snapshot remembers: its storage is gone, so the WAL cannot say which
    DROP was its own; name every transaction that removed storage without creating any."""
    everything = {rel for _c, _w, _l, dropped in scan.commits.values() for rel in dropped}
    drops = [d for d in find_drop(scan, everything)
             if since is None or (d.commit_time and d.commit_time >= since)]
    if not drops:
        return UsageError(f"table {table} does not exist, and no transaction in the WAL "
                          f"archive dropped a table")
    named = "; ".join(f"xid {d.xid} at {d.commit_time:%Y-%m-%dT%H:%M:%S}" if d.commit_time
                      else f"xid {d.xid}" for d in drops[-5:])
    return UsageError(f"table {table} does not exist and no snapshot remembers its storage, so "
                      f"its DROP cannot be told apart; transactions that dropped tables: "
                      f"{named}", hint=f"pass the right one: --target-xid {drops[-1].xid} "
                      f"(restored --exclusive, just before it)")


def relation(conn: psycopg.Connection[Any], table: str) -> str:
    row = conn.execute(
        "select coalesce(nullif(c.reltablespace, 0), 1663), d.oid, pg_relation_filenode(c.oid) "
        "from pg_class c, pg_database d where c.oid = to_regclass(%s) and c.relkind = 'r' "
        "and d.datname = current_database()", (table,)).fetchone()
    if row is None or row[2] is None:
        raise UsageError(f"table {table} does not exist (a dropped table: restore to before the "
                         f"DROP with the schema-drop playbook)")
    return f"{row[0]}/{row[1]}/{row[2]}"


def history(scan: _Scan, current: str) -> tuple[set[str], list[Damage]]:
    """Every relfilenode the table has had, and the TRUNCATEs among the rewrites."""
    files = {current}
    truncates = []
    todo = [current]
    while todo:
        node = todo.pop()
        xid = scan.creates.get(node)
        if xid is None or xid not in scan.commits or not scan.commits[xid][0]:
            continue
        _committed, when, lsn, dropped = scan.commits[xid]
        wrote = node in scan.touched.get(xid, set())   # a rewrite fills the new file
        old = [d for d in dropped if d not in files and any(
            rel == d for records in scan.heap.values() for _op, rel, _b, _o in records)]
        if not wrote and old:
            truncates.append(Damage(xid, "truncate", -1, when, format_lsn(lsn)))
        for d in old:
            files.add(d)
            todo.append(d)
    return files, truncates


def known_locators(state_dir: Path, table: str) -> set[str]:
    """Every relfilenode the snapshots saw the table at (a dropped table is no longer in the
    catalog: the snapshots remember where it was)."""
    from spectral.verify import snapshots
    from spectral.verify.fingerprint import load

    found = set()
    for ref in snapshots.listing(state_dir / "evidence"):
        try:
            doc = load(ref.path)
        except Exception:   # a damaged snapshot is no evidence either way
            continue
        facts = doc.tables.get(table)
        if facts is not None and facts.locator:
            found.add(facts.locator)
    return found


def find_drop(scan: _Scan, locators: set[str]) -> list[Damage]:
    """Transactions whose commit removed the table's storage without creating new storage for
    it (a TRUNCATE or rewrite creates some): a DROP, found through the catalog change."""
    creators = set(scan.creates.values())
    out = []
    for xid, (committed, when, lsn, dropped) in scan.commits.items():
        if committed and locators & set(dropped) and xid not in creators:
            out.append(Damage(xid, "drop", -1, when, format_lsn(lsn)))
    return out


def find_damage(archive: WalArchive, conn: psycopg.Connection[Any], table: str,
                since: datetime | None = None, ops: set[str] | None = None) -> list[Damage]:
    archive.flush()
    scan = scan_archive(archive)
    try:
        current = relation(conn, table)
    except UsageError:
        locators = known_locators(archive.state_dir, table)
        if ops is not None and "drop" not in ops:
            raise
        if not locators:
            raise _unknown_drop(scan, table, since) from None
        drops = find_drop(scan, locators)
        return [d for d in drops if since is None or (d.commit_time and d.commit_time >= since)]
    files, truncates = history(scan, current)
    found: list[Damage] = []
    for xid, records in scan.heap.items():
        mine = [r for r in records if r[1] in files and r[0] in ("delete", "update")]
        commit = scan.commits.get(xid)
        if not mine or commit is None or not commit[0]:
            continue
        op = "delete" if any(r[0] == "delete" for r in mine) else "update"
        found.append(Damage(xid, op, len(mine), commit[1], format_lsn(commit[2]),
                            [(b, o) for _op, _rel, b, o in mine]))
    found += truncates
    found = [d for d in found if (since is None or (d.commit_time and d.commit_time >= since))
             and (ops is None or d.op in ops)]
    return sorted(found, key=lambda d: parse_lsn(d.commit_lsn or "0/0"))


NAMES_SQL = """
select coalesce(nullif(c.reltablespace, 0), 1663) || '/' || d.oid || '/'
       || pg_relation_filenode(c.oid), format('%I.%I', n.nspname, c.relname)
from pg_class c join pg_namespace n on n.oid = c.relnamespace, pg_database d
where d.datname = current_database() and c.relkind in ('r', 'm', 't')
  and pg_relation_filenode(c.oid) is not null
"""


def writes_after(archive: WalArchive, conn: psycopg.Connection[Any],
                 target: RecoveryTarget) -> list[dict[str, Any]]:
    """The committed transactions an in-place restore to `target` takes out of the live
    database, each with the rows it wrote per table (from the WAL), oldest first."""
    from collections import Counter

    archive.flush()
    scan = scan_archive(archive)
    names = {str(k): str(v) for k, v in conn.execute(NAMES_SQL).fetchall()}
    stop = _stop_lsn(archive, scan, target)
    out = []
    for xid, (committed, when, lsn, dropped) in sorted(scan.commits.items(),
                                                       key=lambda kv: kv[1][2]):
        if not committed or stop is None or lsn < stop:
            continue
        rows = Counter(names.get(rel, f"relation {rel}") for _op, rel, _b, _o in
                       scan.heap.get(xid, []))
        if rows or dropped or scan.touched.get(xid):
            out.append({"xid": xid, "time": when.isoformat(timespec="seconds"),
                        "rows": dict(rows), "dropped_files": len(dropped)})
    return out


def _stop_lsn(archive: WalArchive, scan: _Scan, target: RecoveryTarget) -> int | None:
    """Where recovery to `target` stops: commits at or after it leave the live database (None:
    nothing does). A time target stops before the first transaction end, in WAL order, that it
    stops before (PostgreSQL's recoveryStopsBefore): a later commit whose clock ran behind
    goes too."""
    if isinstance(target, TimeTarget):
        return next((rec.lsn for rec in scan.ends if target.stops_before(rec.time)), None)
    if target.kind is TargetKind.LATEST:
        return None
    lsn = archive.locate(target)
    if lsn is None:
        return None
    return lsn if target.exclusive else lsn + 1


def describe_losses(lost: list[dict[str, Any]], limit: int = 12) -> list[str]:
    """Lines for a confirmation: what leaves the live database, per transaction and table."""
    if not lost:
        return ["no committed transaction after the target is in the WAL: nothing else is lost"]
    lines = [f"{len(lost)} committed transaction(s) after the target leave the live database:"]
    for t in lost[:limit]:
        rows = ", ".join(f"{table} {n} row(s)" for table, n in sorted(t["rows"].items()))
        lines.append(f"  xid {t['xid']} at {t['time']}: {rows or 'no row changes (DDL)'}")
    if len(lost) > limit:
        lines.append(f"  ... and {len(lost) - limit} more")
    return lines
