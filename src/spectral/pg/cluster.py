"""A PostgreSQL cluster the tool runs itself: initdb, start, wait, stop (fast, then immediate,
then kill by pid), destroy. Works as root by running the server as an unprivileged user."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from spectral.durable import write_atomic
from spectral.errors import ClusterError, ConnectError
from spectral.pg import conn, pidfile, template
from spectral.pg.binaries import PgBinaries
from spectral.pg.control import control_fact, system_identifier
from spectral.pg.osuser import check_reachable, give_to_server, make_owned_dir, server_identity
from spectral.runner import child_env, run, spawn
from spectral.waits import WaitTimeout, wait_until

CONF_NAME = "spectral.conf"
START_ATTEMPTS = 5   # a chosen port taken before the server bound it: this many ports tried
# PostgreSQL's words when it cannot listen on its port (postmaster.c, pqcomm.c)
PORT_TAKEN_RE = re.compile(r"could not bind .*Address already in use|"
                           r"could not create any TCP/IP sockets")


def conf_quote(value: str) -> str:
    """`value` as a quoted string for postgresql.conf or postgresql.auto.conf. PostgreSQL's
    configuration lexer (src/backend/utils/misc/guc-file.l, GUC_scanstr) reads backslash
    escapes inside quotes and ends a string at a newline, so backslashes are escaped, single
    quotes doubled, and line breaks written as \\n and \\r; anything else is taken as is.
    https://www.postgresql.org/docs/current/config-setting.html#CONFIG-SETTING-CONFIGURATION-FILE
    """
    escaped = (value.replace("\\", "\\\\").replace("'", "''")
               .replace("\n", "\\n").replace("\r", "\\r"))
    return f"'{escaped}'"


def directory_list_item(path: Path) -> str:
    """One directory of a list setting (unix_socket_directories), double-quoted unless plain so
    a comma, a space or a quote in the path stays part of it (SplitDirectoriesString: "" is a
    literal quote)."""
    text = str(path)
    if re.fullmatch(r"[\w./-]+", text, flags=re.ASCII):
        return text
    return '"' + text.replace('"', '""') + '"'


def initdb_argv(bins: PgBinaries, data_dir: Path, superuser: str, pwfile: Path | None,
                wal_segsize_mb: int | None = None) -> list[str]:
    """`wal_segsize_mb`: initdb --wal-segsize (a cluster a team made that way, RDS's 64)."""
    argv = [bins.path("initdb"), "-D", str(data_dir), "-U", superuser, "-E", "UTF8",
            "--locale=C", "--data-checksums", "--auth-local=trust", "--no-instructions"]
    if wal_segsize_mb is not None:
        argv.append(f"--wal-segsize={wal_segsize_mb}")
    if pwfile is not None:
        argv += ["--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
    else:
        argv += ["--auth-host=reject"]
    return argv


def postgres_argv(bins: PgBinaries, data_dir: Path, port: int, socket_dir: Path,
                  extra: dict[str, str] | None = None) -> list[str]:
    """Port and socket on the command line so a copied data directory never collides with its
    source's settings."""
    argv = [bins.path("postgres"), "-D", str(data_dir), "-p", str(port),
            "-c", f"unix_socket_directories={directory_list_item(socket_dir)}",
            "-c", "listen_addresses=127.0.0.1"]
    for key, value in (extra or {}).items():
        argv += ["-c", f"{key}={value}"]
    return argv


SOCKET_PATH_MAX = 100   # sun_path is 108 bytes; leave room for "/.s.PGSQL.NNNNN"


def socket_dir_for(preferred: Path) -> Path:
    """`preferred` unless the socket path would be too long for a Unix socket (a deep working
    directory); then a short directory under /tmp derived from it, stable across runs."""
    if len(str(preferred)) + len("/.s.PGSQL.65535") <= SOCKET_PATH_MAX:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:16]
    return Path("/tmp") / f"spectral-{digest}"


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_alive(pid: int) -> bool:
    """True when the process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def live_cmdline(pid: int) -> bytes:
    """A live process's NUL-separated command line; empty when it is gone or a zombie."""
    if not proc_alive(pid):
        return b""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@dataclass
class Cluster:
    bins: PgBinaries
    data_dir: Path
    socket_dir: Path
    port: int
    log_file: Path
    superuser: str = "postgres"
    settings: dict[str, str] = field(default_factory=dict)
    database: str = "postgres"          # what conninfo() and connect() reach by default
    env: dict[str, str] = field(default_factory=dict, repr=False)   # the server's (secrets)
    # True when spectral picked the port (free_port): if another process takes it before the
    # server binds it, start() picks another. A port someone chose is never changed.
    port_chosen: bool = False
    on_new_port: Callable[[Cluster], None] | None = field(default=None, repr=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log_start: int = field(default=0, repr=False)

    # ---- creation -------------------------------------------------------------------------
    def initdb(self, *, pwfile: Path | None = None, conf: dict[str, str] | None = None,
               wal_segsize_mb: int | None = None) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            raise ClusterError(f"{self.data_dir} already holds a cluster; not initialising over it")
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise ClusterError(f"{self.data_dir} exists and is not empty; not touching it")
        check_reachable(self.data_dir.parent)
        make_owned_dir(self.data_dir)
        make_owned_dir(self.socket_dir)
        make_owned_dir(self.log_file.parent, 0o750)
        if pwfile is not None:
            give_to_server(pwfile)
        argv = initdb_argv(self.bins, self.data_dir, self.superuser, pwfile, wal_segsize_mb)
        if not template.initialise(self.bins, argv, self.data_dir, self.superuser, pwfile):
            run(argv, timeout=300, run_as=server_identity(), cwd=self.data_dir)
        self.write_conf(conf or {})

    def write_conf(self, conf: dict[str, str]) -> None:
        """Our settings live in spectral.conf, included from postgresql.conf, so edits by a person
        to postgresql.conf survive and ours stay in one place."""
        lines = ["# Written by spectral. Changes here are overwritten.\n"]
        lines += [f"{k} = {_conf_value(v)}\n" for k, v in sorted(conf.items())]
        # whole or not at all: a half-written file would keep the server from starting
        target = self.data_dir / CONF_NAME
        write_atomic(target, "".join(lines), mode=0o600)
        give_to_server(target)
        main = self.data_dir / "postgresql.conf"
        text = main.read_text()
        include = f"include_if_exists = {conf_quote(CONF_NAME)}"
        if include not in text:
            write_atomic(main, text.rstrip("\n") + f"\n\n{include}\n", mode=0o600)
            give_to_server(main)

    # ---- state ----------------------------------------------------------------------------
    @property
    def spawned_file(self) -> Path:
        """The pid of the last server process this tool started for the data directory."""
        return self.data_dir.parent / f".{self.data_dir.name}.spawned-pid"

    def pid(self) -> int | None:
        """The postmaster's pid, only if that process is alive and serves this data directory:
        from postmaster.pid, else from the pid recorded when the tool spawned it (a server
        killed mid-start has not written postmaster.pid yet)."""
        for record in (self.data_dir / "postmaster.pid", self.spawned_file):
            try:
                pid = int(record.read_text().splitlines()[0].strip())
            except (OSError, ValueError, IndexError):
                continue
            if pid > 0 and self._serves(pid):
                return pid
        return None

    def _serves(self, pid: int) -> bool:
        """Checked in /proc before any signal: the pid is a postgres serving this data dir."""
        cmdline = live_cmdline(pid).split(b"\0")
        return bool(cmdline) and cmdline[0].endswith(b"postgres") and \
            str(self.data_dir).encode() in cmdline

    def is_running(self) -> bool:
        return self.pid() is not None

    def stopping(self) -> bool:
        """Whether the running server is shutting down (postmaster.pid's status line, which
        the postmaster sets to "stopping" when a shutdown begins): it refuses every new
        connection ("the database system is shutting down") until it is gone."""
        return self.pid() is not None and self._status() == "stopping"

    def conninfo(self, dbname: str | None = None) -> str:
        # quoted by libpq's rules: a space or a quote in the socket's path stays in it
        return make_conninfo(host=str(self.socket_dir), port=str(self.port),
                             user=self.superuser, dbname=dbname or self.database)

    def connect(self, dbname: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        return conn.connect(self.conninfo(dbname), **kwargs)

    # ---- start / stop ---------------------------------------------------------------------
    def start(self, *, timeout: float = 120) -> None:
        """Start the server and wait until it accepts connections. A server found shutting
        down (a command killed while it stopped it) is stopped first; a postmaster.pid left by
        a server that is gone (kill -9) is cleared once nothing of that server is left."""
        if self.is_running():
            if not self.stopping():
                return
            self.stop(timeout=timeout)
        if not (self.data_dir / "PG_VERSION").exists():
            raise ClusterError(f"{self.data_dir} holds no PostgreSQL cluster")
        pidfile.clear_stale(self.data_dir, self._serves, min(timeout, 60))
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                if port_in_use(self.port):
                    raise PortTaken(self.port)
                self._start_once(timeout)
                return
            except PortTaken:
                # the port was free when it was chosen; another process bound it since
                if not self.port_chosen or attempt == START_ATTEMPTS:
                    raise ClusterError(
                        f"port {self.port} is in use by another process; cannot start the "
                        f"cluster in {self.data_dir}",
                        hint=None if self.port_chosen else "stop what listens on it or "
                        "configure another port") from None
                self.port = free_port()
                if self.on_new_port is not None:
                    self.on_new_port(self)

    def _start_once(self, timeout: float) -> None:
        make_owned_dir(self.socket_dir)
        make_owned_dir(self.log_file.parent, 0o750)
        ident = server_identity()
        with open(self.log_file, "ab") as log:
            self._log_start = log.tell()
            self._proc = spawn(
                postgres_argv(self.bins, self.data_dir, self.port, self.socket_dir, self.settings),
                run_as=ident, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=child_env(self.env, ident), cwd=self.data_dir)
        # recorded before the server writes postmaster.pid, so a run killed mid-start leaves
        # a pid that the next stop can check and signal (never a search by command line)
        write_atomic(self.spawned_file, f"{self._proc.pid}\n")
        try:
            # polled finely (a drill waits on it); a poll reads postmaster.pid, then connects
            wait_until(self._ready, timeout=timeout, interval=0.01, max_interval=0.05,
                       what=f"PostgreSQL in {self.data_dir} accepting connections")
        except WaitTimeout:
            self.stop(timeout=10)
            raise ClusterError(f"PostgreSQL did not become ready within {timeout:g}s; "
                               f"see {self.log_file}: {self._log_reason()}") from None
        except BaseException:
            self.stop(timeout=10)
            raise

    def _ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            if PORT_TAKEN_RE.search(self._log_since_start()):
                raise PortTaken(self.port)
            raise ClusterError(f"PostgreSQL exited during start-up: {self._log_reason()}")
        if not (self.socket_dir / f".s.PGSQL.{self.port}").exists():
            return False
        if self._status() in ("starting", "stopping"):   # it refuses connections (recovery)
            return False
        try:
            with conn.connect(self.conninfo("postgres"), timeout=2) as c:
                c.execute("select 1")
            return True
        except ConnectError as exc:
            # it answered: only the role or the database it was asked for is not there (a
            # team's restored cluster need not have `postgres`); whoever connects next says so
            return "does not exist" in exc.message

    def _status(self) -> str | None:
        """postmaster.pid's status line (starting, ready, standby, stopping), if written."""
        try:
            return pidfile.status((self.data_dir / "postmaster.pid").read_text().splitlines())
        except OSError:
            return None

    def _log_since_start(self) -> str:
        """What the server logged since this start (the log is appended to across starts)."""
        try:
            with open(self.log_file, "rb") as log:
                log.seek(self._log_start)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def _log_reason(self) -> str:
        """Why the server did not start, from what it logged since this start (the last
        lines of the log when that is not known)."""
        try:
            since = self._log_since_start() if self._log_start else ""
            lines = (since or self.log_file.read_text(errors="replace")).splitlines()[-40:]
        except OSError:
            return "no log"
        for line in reversed(lines):
            if "Address already in use" in line or "could not bind" in line:
                return f"port {self.port} is in use"
            if "lock file" in line and "already exists" in line:
                said = line.split("FATAL:", 1)[-1].strip()
                return f"the data directory is in use by another server ({said})"
        fatal = [ln for ln in lines if re.search(r"\b(FATAL|PANIC)\b", ln)]
        return (fatal[-1] if fatal else (lines[-1] if lines else "empty log")).strip()

    def stop(self, *, timeout: float = 60, discard: bool = False) -> bool:
        """Fast shutdown; if it does not finish, immediate; then SIGKILL of its process group.
        `discard`: the data directory is deleted next: immediate at once, no shutdown checkpoint.
        Returns True when a running server was stopped."""
        pid = self.pid()
        if pid is None:
            self._reap()
            return False
        steps = ((signal.SIGINT, timeout), (signal.SIGQUIT, 15.0), (signal.SIGKILL, 15.0))
        for sig, wait in steps[1:] if discard else steps:
            with contextlib.suppress(ProcessLookupError):
                if sig is signal.SIGKILL:
                    os.killpg(pid, sig)
                else:
                    os.kill(pid, sig)
            try:
                wait_until(partial(self._gone, pid), timeout=wait, interval=0.02,
                           max_interval=0.05, what="server exit")
                break
            except WaitTimeout:
                continue
        self._reap()
        return True

    def _gone(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is not None
        return not proc_alive(pid)

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(Exception):
                self._proc.wait(timeout=5)
            self._proc = None

    def destroy(self) -> None:
        self.stop(timeout=30, discard=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # ---- facts ----------------------------------------------------------------------------
    def system_identifier(self) -> str:
        return system_identifier(self.data_dir)

    def checkpoint_timeline(self) -> int:
        """The timeline of the control file's latest checkpoint (the server stopped)."""
        return int(control_fact(self.bins, self.data_dir, "Latest checkpoint's TimeLineID"))


class PortTaken(ClusterError):
    """The server could not listen on its port: another process holds it."""

    def __init__(self, port: int) -> None:
        super().__init__(f"port {port} is in use by another process")


def _conf_value(value: str) -> str:
    if re.fullmatch(r"-?\d+(\.\d+)?|on|off|true|false", value):
        return value
    return conf_quote(value)
