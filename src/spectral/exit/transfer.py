"""The logical copy: pg_dump's directory format in parallel, restored by pg_restore's scripts
into psql as the target's (non-superuser) role.

Restoring into an older major version is not something pg_restore promises, and two things break
on the way, found on the reference database (PostgreSQL 18 into 15, as a role without
BYPASSRLS):
- the script starts with `SET` lines for settings the older server does not have
  (`transaction_timeout`, PostgreSQL 17): such lines of the preamble are dropped, by asking the
  target which settings it has, never by a list of names;
- a table with FORCE ROW LEVEL SECURITY is made forced in pre-data, so refreshing a
  materialized view over it at the end of post-data fails for its owner ("query would be
  affected by row-level security policy"): FORCE is applied last, after everything else.
The data section runs as several psql sessions at once (the tables split by the size of their
dump files), the schema sections each in one transaction."""

from __future__ import annotations

import os
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from spectral.durable import write_atomic
from spectral.errors import CommandError, CouldNotVerify
from spectral.pg.binaries import PgBinaries
from spectral.runner import pipe, run
from spectral.verify import locks


def quote_ident(name: str) -> str:
    """An identifier as pg_dump writes it: bare when it is lower case and plain."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else \
        '"' + name.replace('"', '""') + '"'

TIMEOUT = 6 * 3600.0
_SET = re.compile(rb"^SET ([a-z_]+) = .*;\s*$")
_FORCE = re.compile(rb"^ALTER TABLE (ONLY )?.* FORCE ROW LEVEL SECURITY;\s*$")
_GRANT = re.compile(rb"^(?P<head>(?:ALTER DEFAULT PRIVILEGES .*?)?(?:GRANT|REVOKE) "
                    rb"(?:GRANT OPTION FOR )?)(?P<list>[A-Z][A-Z ]*(?:\([^)]*\))?"
                    rb"(?:,[A-Z][A-Z ]*(?:\([^)]*\))?)*) ON (?P<rest>.*)$", re.DOTALL)
_FOR_ROLE = re.compile(rb'^ALTER DEFAULT PRIVILEGES FOR ROLE (?:"(?:[^"]|"")+"|[^ ]+) ')
_GRANTEE = re.compile(rb'^(?:ALTER DEFAULT PRIVILEGES .*?)?(?:GRANT .* TO |REVOKE .* FROM )'
                      rb'(?P<who>"(?:[^"]|"")+"|[^ ;]+)(?: WITH GRANT OPTION| GRANTED BY .*'
                      rb'| CASCADE)?;\s*$')
_POLICY_ROLES = re.compile(rb'^CREATE POLICY .*? TO (?P<who>(?:"(?:[^"]|"")+"|[^ ,;]+)'
                           rb'(?:, (?:"(?:[^"]|"")+"|[^ ,;]+))*)(?: USING| WITH CHECK|;)')
_ALWAYS = frozenset({"ALL", "CONNECT", "TEMPORARY", "TEMP"})   # database privileges


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _split_privileges(text: str) -> list[str]:
    """`SELECT(a,b),UPDATE(a),MAINTAIN` -> its privileges, each with its column list."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(text[start:i])
            start = i + 1
    return [*out, text[start:]]


@dataclass
class Connection:
    """A DSN split for the client programs: the password goes in the environment, never on a
    command line (where `ps` shows it)."""

    dsn: str
    conninfo: str = field(init=False)
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        parts = {k: str(v) for k, v in conninfo_to_dict(self.dsn).items()}
        password = parts.pop("password", None)
        self.conninfo = make_conninfo(**parts)
        self.env = {"PGPASSWORD": password} if password else {}


def dump(bins: PgBinaries, source: Connection, schemas: tuple[str, ...], out: Path,
         jobs: int, *, snapshot: str | None = None, lock_wait: float = 2.0) -> None:
    """pg_dump of the schemas. It waits at most `lock_wait` seconds for each table's lock, and
    holds them all until it is done: a statement of production that waits behind them for as
    long (a migration's ALTER TABLE, and every query queued behind that) makes the dump give
    way (verify/locks.py): its sessions are ended and the exit could not verify, naming the
    table and the statement. Nothing was written to the target yet."""
    name = f"spectral-exit-dump-{os.getpid()}-{secrets.token_hex(4)}"
    argv = [bins.path("pg_dump"), "--format=directory", f"--jobs={jobs}", "--file", str(out),
            f"--lock-wait-timeout={int(lock_wait * 1000)}",
            *([f"--snapshot={snapshot}"] if snapshot else []),
            "--no-publications", "--no-subscriptions", "--no-security-labels",
            "--no-tablespaces", *[f"--schema={s}" for s in schemas], "--dbname",
            make_conninfo(source.conninfo, application_name=name)]
    with locks.GiveWay(source.dsn, [], lock_wait, lambda: None, names=[name]) as watcher:
        try:
            run(argv, timeout=TIMEOUT, env=source.env)
        except CommandError:
            if watcher.conflict is not None:
                raise CouldNotVerify(
                    f"the dump of the source gave way to production: "
                    f"{watcher.conflict.describe()}; nothing was written to the target",
                    hint="run the exit again once that statement is done; the environment's "
                         "lock_timeout sets how long production may wait behind it") from None
            raise


@dataclass
class Restore:
    bins: PgBinaries
    archive: Path
    target: Connection
    settings: set[str]                 # the target server's setting names
    jobs: int
    adopted: tuple[str, ...] = ()      # empty schemas the target already has (public)
    privileges: frozenset[str] = frozenset()   # the target's privilege names (all if empty)
    default_role: str | None = None    # default privileges are set for this role (the user)
    role_map: dict[str, str] = field(default_factory=dict)   # grantees replaced (owners)
    deferred: list[bytes] = field(default_factory=list)

    def psql(self) -> list[str]:
        return [self.bins.path("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                "--single-transaction", "-o", os.devnull, "-d", self.target.conninfo]

    def restore_argv(self, *extra: str) -> list[str]:
        return [self.bins.path("pg_restore"), "--no-owner", "--file", "-", *extra,
                str(self.archive)]

    def section(self, name: str) -> None:
        pipe(self.restore_argv(f"--section={name}"), self.psql(), timeout=TIMEOUT,
             edit=self._edit_schema, env=self.target.env)

    def data(self) -> None:
        """The data section in `jobs` psql sessions, the tables spread by dump file size."""
        listing = run([self.bins.path("pg_restore"), "--list", "--section=data",
                       str(self.archive)], timeout=600).stdout.splitlines()
        entries = [line for line in listing if line and not line.startswith(";")]
        lists: list[list[str]] = [[] for _ in range(max(1, self.jobs))]
        sizes = [0] * len(lists)
        for line in sorted(entries, key=lambda e: -self._size(e)):
            i = sizes.index(min(sizes))
            lists[i].append(line)
            sizes[i] += self._size(line)
        files = []
        for i, chosen in enumerate(lists):
            if chosen:
                path = self.archive.parent / f"{self.archive.name}.data{i}.list"
                write_atomic(path, "\n".join(chosen) + "\n")
                files.append(path)
        with ThreadPoolExecutor(len(files) or 1) as pool:
            for future in [pool.submit(self._data_list, f) for f in files]:
                future.result()

    def _data_list(self, listing: Path) -> None:
        pipe(self.restore_argv("--use-list", str(listing)), self.psql(), timeout=TIMEOUT,
             edit=self._edit_data, env=self.target.env)

    def _size(self, entry: str) -> int:
        dump_id = entry.split(";", 1)[0].strip()
        for suffix in (".dat.gz", ".dat", ".dat.lz4", ".dat.zst"):
            path = self.archive / f"{dump_id}{suffix}"
            if path.exists():
                return path.stat().st_size
        return 0

    def finish(self) -> None:
        """What had to wait for everything else: FORCE ROW LEVEL SECURITY."""
        if self.deferred:
            script = b"".join(self.deferred).decode()
            run(self.psql(), timeout=600, env=self.target.env, input_text=script)

    # ---- the edits ------------------------------------------------------------------------
    def _keep(self, line: bytes) -> bool:
        found = _SET.match(line)
        return found is None or found.group(1).decode() in self.settings

    def _grantee(self, line: bytes) -> bytes:
        """The grantee of a GRANT or REVOKE and the roles of a policy, mapped as the
        portability report planned (an owner that is also a grantee is the target's user)."""
        if not self.role_map:
            return line
        found = _GRANTEE.match(line) or _POLICY_ROLES.match(line)
        if found is None:
            return line
        names = [n.strip() for n in found["who"].decode().split(",")]
        mapped = [quote_ident(self.role_map.get(_unquote(n), _unquote(n)))
                  if _unquote(n) in self.role_map else n for n in names]
        return line[:found.start("who")] + ", ".join(mapped).encode() + line[found.end("who"):]

    def _for_role(self, line: bytes) -> bytes:
        """Default privileges FOR ROLE another role are set for the target's user (the
        portability report's plan: the user creates the objects there)."""
        if self.default_role is None:
            return line
        return _FOR_ROLE.sub(b"ALTER DEFAULT PRIVILEGES FOR ROLE " +
                             quote_ident(self.default_role).encode() + b" ", line, count=1)

    def _granted(self, line: bytes) -> bytes | None:
        """A GRANT or REVOKE (a default privilege's too) without the privileges the target's
        version does not have (pg_dump lists MAINTAIN among others whenever a grantee holds
        all but some privileges); None when none is left."""
        found = _GRANT.match(line)
        if found is None or not self.privileges:
            return line
        kept = [p for p in _split_privileges(found.group("list").decode())
                if p.split("(", 1)[0].strip() in self.privileges | _ALWAYS]
        if not kept:
            return None
        return found.group("head") + ",".join(kept).encode() + b" ON " + found.group("rest")

    def _edit_schema(self, src: IO[bytes], dst: IO[bytes]) -> None:
        adopt = {f"CREATE SCHEMA {quote_ident(s)};".encode() for s in self.adopted}
        for line in src:
            if _FORCE.match(line):
                self.deferred.append(line)
            elif line.rstrip() in adopt:
                continue          # every database has `public`: adopted, not created
            elif self._keep(line) and (granted := self._granted(line)) is not None:
                dst.write(self._grantee(self._for_role(granted)))

    def _edit_data(self, src: IO[bytes], dst: IO[bytes]) -> None:
        """Only the preamble is read line by line; from the first COPY on, bytes pass as
        they are."""
        for line in src:
            if not self._keep(line):
                continue
            dst.write(line)
            if line.startswith(b"COPY "):
                break
        while chunk := src.read(1 << 20):
            dst.write(chunk)
