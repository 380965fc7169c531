"""reladiff 0.6.0, the data-diff baseline of `dr compare`, run so that a run that did not
compare can never pass for a time.

reladiff's command line logs any error (a refused connection, a table it cannot read, a
column it cannot match) and still exits 0, so its exit status says nothing. Each table's run
is judged by what it printed instead: its statistics (`-s --json`) must be there, and both of
its row counts must be the table's own, counted beforehand. A run with any table that fails
that has no time (`seconds` is None) and says why, table by table.

Both databases are reached the way spectral reaches them, through their Unix sockets (a
restored copy accepts nothing else: its pg_hba.conf has local lines only), by a TOML
connection file reladiff reads (`toml://FILE#a`): two different URIs, so reladiff diffs by
hashes across the two servers (the same URI twice would make it join inside one). No password
is written: the clusters trust their local socket."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from spectral.pg.conn import connect

VERSION = "0.6.0"
VENV = Path(__file__).parent / "out" / "reladiff-venv"
# reladiff's own environment: wide lines for its JSON (rich wraps at the terminal's width), and
# no PYTHONPATH of ours (a module of ours could stand in for one of its own)
ENV = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "COLUMNS": "10000"}


@dataclass(frozen=True)
class Table:
    name: str             # schema.table
    keys: tuple[str, ...]  # its primary key, which reladiff needs
    rows: int             # counted before reladiff runs: what it must say it compared


def ensure() -> Path:
    exe = VENV / "bin" / "reladiff"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q",
                        f"reladiff[postgresql]=={VERSION}"], check=True)
    return exe


# key types reladiff can bisect a table by (a timestamp in a key is refused: "Cannot use a
# column of type TimestampTZ as a key")
KEY_TYPES = ("smallint", "integer", "bigint", "uuid", "text", "character varying")
TABLES_SQL = """
select format('%%s.%%s', n.nspname, c.relname),
       array(select a.attname::text from unnest(i.indkey) k
             join pg_attribute a on a.attrelid = c.oid and a.attnum = k
             where format_type(a.atttypid, null) = any(%s))
from pg_class c join pg_namespace n on n.oid = c.relnamespace
left join pg_index i on i.indrelid = c.oid and i.indisprimary
where n.nspname = any(%s) and c.relkind = 'r' order by 1"""


def tables_of(conninfo: str, schemas: tuple[str, ...] | list[str]
              ) -> tuple[list[Table], dict[str, str]]:
    """Every ordinary table of `schemas` with its row count and a key reladiff can use: the
    primary key's columns of a type reladiff can bisect, when they alone are still unique (the
    reference database's partitions of worlds.documents are keyed by (id, uploaded_at): by id).
    And the tables left out, with the reason: no such key, or empty (reladiff's command line
    refuses an empty table with text columns whatever --allow-empty-tables says, and there
    is nothing in it to compare: leaving them out only makes reladiff's time shorter)."""
    tables, skipped = [], {}
    with connect(conninfo) as conn:
        for name, keys in conn.execute(TABLES_SQL, (list(KEY_TYPES), list(schemas))):
            unique = f"count(distinct ({', '.join(keys)}))" if keys else "-1"
            rows, distinct = conn.execute(  # type: ignore[misc]
                f"select count(*), {unique} from {name}").fetchone()
            if not rows:
                skipped[name] = "empty"
            elif keys and rows == distinct:
                tables.append(Table(name, tuple(keys), int(rows)))
            else:
                skipped[name] = "no key reladiff can use"
    return tables, skipped


def connection_file(folder: Path, a: str, b: str) -> Path:
    """The two databases as reladiff's TOML connection entries `a` and `b`."""
    lines = []
    for label, conninfo in (("a", a), ("b", b)):
        d = conninfo_to_dict(conninfo)
        lines += [f"[database.{label}]", 'driver = "postgresql"']
        for key in ("host", "port", "user", "dbname"):
            if d.get(key):
                lines.append(f"{key} = {json.dumps(str(d[key]))}")
        lines.append("")
    path = folder / "reladiff.toml"
    path.write_text("\n".join(lines))
    return path


def argv(exe: Path, conf: Path, table: Table, threads: int) -> list[str]:
    """One table of A against the same table of B, every column, statistics as JSON."""
    out = [str(exe), f"toml://{conf}#a", table.name, f"toml://{conf}#b", table.name,
           "-c", "%", "-j", str(threads), "-s", "--json"]
    for k in table.keys:
        out += ["-k", k]
    return out


def stats_of(stdout: str) -> dict[str, Any] | None:
    """The statistics reladiff printed (rich may wrap the line), or None."""
    text = "".join(stdout.split("\n"))
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        stats: dict[str, Any] = json.loads(text[start:end + 1])
    except ValueError:
        return None
    return stats if "rows_A" in stats and "rows_B" in stats else None


def judge(table: Table, stats: dict[str, Any] | None, stderr: str,
          expect_rows_b: int | None = None) -> str | None:
    """Why this table's run did not compare the whole table, or None when it did."""
    if stats is None:
        errors = [ln for ln in stderr.splitlines() if "ERROR" in ln or "Error" in ln]
        return ((errors or stderr.strip().splitlines() or ["no statistics printed"])[-1])[:300]
    want_b = table.rows if expect_rows_b is None else expect_rows_b
    if stats["rows_A"] != table.rows or stats["rows_B"] != want_b:
        return (f"compared {stats['rows_A']} and {stats['rows_B']} rows of {table.rows} and "
                f"{want_b}")
    return None


def differences(stats: dict[str, Any]) -> int:
    return int(stats["exclusive_A"]) + int(stats["exclusive_B"]) + int(stats["updated"])


def one(exe: Path, conf: Path, table: Table, threads: int) -> dict[str, Any]:
    """reladiff on one table: its time, what it compared, what it found, and why it failed."""
    started = time.monotonic()
    res = subprocess.run(argv(exe, conf, table, threads), capture_output=True, text=True,
                         timeout=3600, env=ENV)
    seconds = round(time.monotonic() - started, 3)
    stats = stats_of(res.stdout)
    return {"seconds": seconds, "exit": res.returncode, "stats": stats,
            "failed": judge(table, stats, res.stderr),
            "stderr": res.stderr.strip().splitlines()[-3:]}


def run(a: str, b: str, tables: list[Table], *, threads: int = 2,
        identical: bool = True) -> dict[str, Any]:
    """reladiff on every table, A against B. `seconds` is the sum of the tables' runs, and None
    when any table was not compared whole (or, `identical`, when it found a difference between
    a database and its copy: a baseline that is wrong is no baseline either)."""
    exe = ensure()
    per_table: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as folder:
        conf = connection_file(Path(folder), a, b)
        started = time.monotonic()
        for table in tables:
            r = one(exe, conf, table, threads)
            s = r["stats"] or {}
            per_table[table.name] = {"seconds": r["seconds"], "rows_a": s.get("rows_A"),
                                     "rows_b": s.get("rows_B"), "expected_rows": table.rows,
                                     "differences": differences(s) if s else None}
            if r["failed"]:
                failed[table.name] = r["failed"]
            elif identical and differences(s):
                failed[table.name] = f"{differences(s)} differences between identical tables"
        total = round(time.monotonic() - started, 2)
    return {"version": VERSION, "threads": threads, "connection": "unix sockets",
            "seconds": None if failed else total, "tables": per_table, "failed": failed,
            "rows_compared": sum(t["rows_a"] or 0 for t in per_table.values())}


def finds(a: str, b: str, table: Table, change: str, undo: str, *,
          threads: int = 2) -> str | None:
    """Whether reladiff sees one row changed in B (`change`, then `undo`, run in B): None when
    it reports exactly that row as updated, else what it said."""
    exe = ensure()
    with connect(b) as conn:
        conn.execute(change)
    try:
        with tempfile.TemporaryDirectory() as folder:
            r = one(exe, connection_file(Path(folder), a, b), table, threads)
    finally:
        with connect(b) as conn:
            conn.execute(undo)
    if r["failed"]:
        return str(r["failed"])
    s = r["stats"]
    if s["updated"] != 1 or s["exclusive_A"] or s["exclusive_B"]:
        return f"one row changed, reladiff says {s}"
    return None
