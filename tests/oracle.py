"""PostgreSQL's own recovery as the oracle for every restore spectral makes.

The oracle restores the same target a second way and shares no code with what it checks: it
reads the backup catalog as plain JSON, copies the same base backup (or has pg_combinebackup join
an incremental chain), gathers the complete WAL the source wrote (the archive and the stream as
they are on disk, then the live source's pg_wal for anything not archived), and starts a plain
`postgres` on the copy with `recovery_target_*` written here, `recovery_target_action = promote`
and `restore_command = cp`. It never imports spectral's restore, target, WAL or cluster code;
it starts and stops its own server by the pid it recorded.

What it answers:
- the target was reached: the rows of every table after promotion;
- recovery ended before the target ("recovery ended before configured recovery target was
  reached", and only that: not another FATAL, which may come after the target was found): for
  a time or LSN target that lies in the past of the complete WAL (the source
  wrote nothing after it up to the moment the WAL was gathered), the state at the target is the
  state at the end of that WAL, so the oracle replays it all; for an xid or a restore point the
  target is unreachable, and spectral must have refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

import scratch

SERVER_USER = os.environ.get("SPECTRAL_SERVER_USER", "spectral")
NOT_REACHED = "recovery ended before configured recovery target was reached"
CONNECTING = ("the database system is starting up", "not accepting connections")


@dataclass(frozen=True)
class Target:
    """A recovery target in PostgreSQL's own words; kind is time, xid, lsn, name or latest."""

    kind: str
    value: str = ""
    inclusive: bool = True

    def settings(self) -> dict[str, str]:
        if self.kind == "latest":
            return {}
        out = {f"recovery_target_{self.kind}": self.value}
        if self.kind != "name":
            out["recovery_target_inclusive"] = "on" if self.inclusive else "off"
        return out


def time_target(when: datetime, inclusive: bool = True) -> Target:
    return Target("time", when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00"), inclusive)


@dataclass(frozen=True)
class Outcome:
    reached: bool
    how: str                        # reached | end of the complete WAL | why not
    digests: dict[str, str] | None


@dataclass(frozen=True)
class Source:
    """Where the oracle finds the backups and the WAL of an environment."""

    backups: Path                  # the repository: catalog.json, base/<id>/, wal/, stream/
    live_data: Path | None         # the source's data directory (its pg_wal), if ours to read
    live_conninfo: str | None      # the running source, to learn how far its WAL has gone
    dbname: str
    superuser: str = "postgres"
    # how far the source had flushed its WAL, and its timeline, when it cannot be asked (a
    # crashed source): the test read them before the crash
    flushed: tuple[str, int] | None = None


def chain(backups: Path, backup_id: str) -> list[Path]:
    """The base backup directories of `backup_id`'s chain, oldest first (catalog as JSON)."""
    by_id = {b["id"]: b for b in json.loads((backups / "catalog.json").read_text())["backups"]}
    out: list[Path] = []
    cur: str | None = backup_id
    while cur is not None:
        out.insert(0, backups / "base" / cur)
        cur = by_id[cur].get("parent")
    return out


def _owner() -> tuple[int, int]:
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    entry = pwd.getpwnam(SERVER_USER)
    return entry.pw_uid, entry.pw_gid


def _chown_tree(path: Path) -> None:
    uid, gid = _owner()
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, gid)
        for name in dirs + files:
            os.chown(Path(root) / name, uid, gid, follow_symlinks=False)


SEGMENT = 16 * 1024 * 1024    # wal_segment_size of every cluster the tests make


def gather_wal(source: Source, dest: Path) -> None:
    """Every WAL and history file the source wrote: the archive first (as it is on disk,
    damage included), then complete stream files, then the live pg_wal for what is neither. A
    file shorter or longer than a segment is not a segment the source wrote (PostgreSQL would
    stop with FATAL on it even for targets before it), so it is left out like a missing one."""
    dest.mkdir(parents=True, exist_ok=True)
    folders = [source.backups / "wal", source.backups / "stream"]
    if source.live_data is not None:
        folders.append(source.live_data / "pg_wal")
    for folder in folders:
        if not folder.is_dir():
            continue
        for f in sorted(folder.iterdir()):
            if not f.is_file() or f.name.endswith(".partial") or (dest / f.name).exists():
                continue
            with contextlib.suppress(FileNotFoundError):   # recycled meanwhile
                if (len(f.name) == 24 and f.stat().st_size == SEGMENT) or \
                        f.name.endswith(".history"):
                    shutil.copy2(f, dest / f.name)


def seed_pg_wal(wal: Path, pg_wal: Path) -> None:
    """Where a timeline branched inside a segment, the older timelines' files of that segment go
    into the copy's pg_wal too. Redo fetches the segment under the newest timeline's name, but
    at the end of recovery PostgreSQL (15) reads the PREPARE record of a transaction still
    prepared at the stop point from pg_wal under the name of the timeline it replayed there,
    and dies ("requested WAL segment pg_wal/... has already been removed") when only the other
    file was fetched. These are the same files restore_command serves: the WAL recovery reads
    is the same."""
    by_number: dict[str, list[Path]] = {}
    for f in wal.iterdir():
        if len(f.name) == 24:
            by_number.setdefault(f.name[8:], []).append(f)
    pg_wal.mkdir(exist_ok=True)
    for files in by_number.values():
        for f in sorted(files)[:-1]:      # all but the newest timeline's (names sort by it)
            shutil.copy2(f, pg_wal / f.name)


def live_position(source: Source) -> tuple[str | None, int | None]:
    """How far the running source has flushed its WAL (commits are on disk), and its
    timeline; None when it does not run."""
    if source.flushed is not None:
        return source.flushed
    if source.live_conninfo is None:
        return None, None
    try:
        with psycopg.connect(source.live_conninfo, autocommit=True) as conn:
            row = conn.execute("select pg_current_wal_flush_lsn()::text, "
                               "pg_walfile_name(pg_current_wal_flush_lsn())").fetchone()
    except psycopg.Error:
        return None, None
    assert row is not None
    return row[0], int(row[1][:8], 16)


def _lsn(text: str) -> int:
    hi, _, lo = text.partition("/")
    return (int(hi, 16) << 32) | int(lo, 16)


class OracleServer:
    """A plain postgres on a copied backup, started and stopped by its recorded pid."""

    def __init__(self, bin_dir: Path, data: Path, home: Path, settings: dict[str, str]) -> None:
        self.bin_dir, self.data, self.home = bin_dir, data, home
        self.port = _free_port()
        self.settings = {**settings, "port": str(self.port)}
        self.log = home / "oracle.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        uid, gid = _owner()
        argv = [str(self.bin_dir / "postgres"), "-D", str(self.data)]
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, user=uid, group=gid,
                                         extra_groups=[], start_new_session=True)

    def conninfo(self, dbname: str, superuser: str) -> str:
        return f"host={self.home} port={self.port} user={superuser} dbname={dbname}"

    def wait_promoted(self, dbname: str, superuser: str, timeout: float = 300) -> bool:
        """True once it runs out of recovery; False when it exited (target not reached)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            with contextlib.suppress(psycopg.Error), psycopg.connect(
                    self.conninfo(dbname, superuser), connect_timeout=2,
                    autocommit=True) as conn:
                row = conn.execute("select pg_is_in_recovery()").fetchone()
                if row is not None and not row[0]:
                    return True
            time.sleep(0.1)
        raise AssertionError(f"the oracle's recovery did not end in {timeout} s: "
                             f"{self.log_tail()}")

    def switchpoint(self) -> int:
        """Where recovery ended: the newest timeline history file's last switch point."""
        files = sorted(self.data.glob("pg_wal/*.history"), key=lambda f: int(f.stem, 16))
        lines = [ln for ln in files[-1].read_text().splitlines() if ln.strip()
                 and not ln.startswith("#")]
        return _lsn(lines[-1].split()[1])

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-8:])

    def why_not(self) -> str:
        """What ended recovery: the startup process's FATAL or PANIC (never a refused
        connection's), else the log's tail."""
        lines = self.log.read_text(errors="replace").splitlines()
        said = [ln for ln in lines if ("FATAL:" in ln or "PANIC:" in ln)
                and not any(c in ln for c in CONNECTING)]
        return "\n".join(said[-2:]) or self.log_tail()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)          # fast shutdown
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Digest = Callable[[str], dict[str, str]]


def restore(bin_dir: Path, source: Source, backup_id: str, target: Target, timeline: int | None,
            digest: Digest) -> Outcome:
    """Restore `target` from `backup_id` with PostgreSQL alone; `digest(conninfo)` reads the
    rows (the caller's content checksum, applied to both restores alike)."""
    home = Path(tempfile.mkdtemp(prefix="oracle-", dir=scratch.root()))
    home.chmod(0o755)
    try:
        position, live_tl = live_position(source)   # before the WAL is gathered
        wal = home / "wal"
        gather_wal(source, wal)
        tl = timeline or live_tl
        if target.kind != "latest":
            outcome, _ = _recover(bin_dir, source, backup_id, target, tl, home, wal, digest)
            if outcome.reached or NOT_REACHED not in outcome.how or \
                    not _in_the_past(target, position):
                return outcome
        # the latest point, or a time or LSN with nothing written after it (PostgreSQL ran out
        # of WAL before it: any other FATAL, even after the target was found, is no sign of
        # that): the state there is the state at the end of the complete WAL, if recovery got
        # to that end
        again, end = _recover(bin_dir, source, backup_id, Target("latest"), tl, home, wal,
                              digest)
        if position is None or end is None or not _covers(end, _lsn(position)):
            return Outcome(False, f"recovery ended before the end of the WAL the source "
                           f"wrote ({position})", None)
        return Outcome(True, "end of the complete WAL", again.digests)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _covers(end: int, position: int) -> bool:
    """Recovery that ended at `end` replayed every record before `position` (the source's
    insert position, which may sit just past the page header that follows `end`)."""
    return end >= position or (end % 8192 == 0 and position - end <= 40)


def _in_the_past(target: Target, position: str | None) -> bool:
    if position is None:
        return False
    if target.kind == "time":
        return datetime.fromisoformat(target.value.replace("+00", "+00:00")) <= datetime.now(UTC)
    return target.kind == "lsn" and _lsn(target.value) <= _lsn(position)


def _recover(bin_dir: Path, source: Source, backup_id: str, target: Target,
             timeline: int | None, home: Path, wal: Path,
             digest: Digest) -> tuple[Outcome, int | None]:
    data = home / "data"
    shutil.rmtree(data, ignore_errors=True)
    parts = chain(source.backups, backup_id)
    if len(parts) == 1:
        shutil.copytree(parts[0], data, symlinks=True)
    else:
        subprocess.run([str(bin_dir / "pg_combinebackup"), "-o", str(data),
                        *map(str, parts)], check=True, capture_output=True, timeout=600)
    (data / "recovery.signal").write_text("")
    seed_pg_wal(wal, data / "pg_wal")
    for leftover in ("postmaster.pid", "standby.signal"):
        (data / leftover).unlink(missing_ok=True)
    data.chmod(0o700)
    _chown_tree(home)
    settings = {
        "listen_addresses": "", "unix_socket_directories": str(home),
        "archive_mode": "off", "hot_standby": "off", "synchronous_standby_names": "",
        "restore_command": f"cp {shlex.quote(str(wal))}/%f %p",
        "recovery_target_action": "promote",
        "recovery_target_timeline": str(timeline) if timeline else "latest",
        "fsync": "off", "max_prepared_transactions": "64", **target.settings()}
    server = OracleServer(bin_dir, data, home, settings)
    server.start()
    try:
        if not server.wait_promoted(source.dbname, source.superuser):
            # NOT_REACHED, or another FATAL (a stop point before the backup's consistency
            # point, a timeline that does not hold the target): PostgreSQL would not restore
            return Outcome(False, server.why_not(), None), None
        rows = digest(server.conninfo(source.dbname, source.superuser))
        return Outcome(True, "reached", rows), server.switchpoint()
    finally:
        server.stop()
