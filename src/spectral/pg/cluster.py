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
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from spectral.durable import write_atomic
from spectral.errors import ClusterError, ConnectError
from spectral.pg import conn
from spectral.pg.binaries import PgBinaries
from spectral.pg.osuser import check_reachable, give_to_server, make_owned_dir, server_identity
from spectral.runner import child_env, run, spawn
from spectral.waits import WaitTimeout, wait_until

CONF_NAME = "spectral.conf"


def initdb_argv(bins: PgBinaries, data_dir: Path, superuser: str, pwfile: Path | None) -> list[str]:
    argv = [bins.path("initdb"), "-D", str(data_dir), "-U", superuser, "-E", "UTF8",
            "--locale=C", "--data-checksums", "--auth-local=trust", "--no-instructions"]
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
            "-c", f"unix_socket_directories={socket_dir}", "-c", "listen_addresses=127.0.0.1"]
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
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # ---- creation -------------------------------------------------------------------------
    def initdb(self, *, pwfile: Path | None = None, conf: dict[str, str] | None = None) -> None:
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
        run(initdb_argv(self.bins, self.data_dir, self.superuser, pwfile), timeout=300,
            run_as=server_identity(), cwd=self.data_dir)
        self.write_conf(conf or {})

    def write_conf(self, conf: dict[str, str]) -> None:
        """Our settings live in spectral.conf, included from postgresql.conf, so edits by a person
        to postgresql.conf survive and ours stay in one place."""
        lines = ["# Written by spectral. Changes here are overwritten.\n"]
        lines += [f"{k} = {_conf_value(v)}\n" for k, v in sorted(conf.items())]
        target = self.data_dir / CONF_NAME
        target.write_text("".join(lines))
        give_to_server(target)
        main = self.data_dir / "postgresql.conf"
        text = main.read_text()
        include = f"include_if_exists = '{CONF_NAME}'"
        if include not in text:
            main.write_text(text.rstrip("\n") + f"\n\n{include}\n")

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

    def conninfo(self, dbname: str | None = None) -> str:
        return (f"host={self.socket_dir} port={self.port} user={self.superuser} "
                f"dbname={dbname or self.database}")

    def connect(self, dbname: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        return conn.connect(self.conninfo(dbname), **kwargs)

    # ---- start / stop ---------------------------------------------------------------------
    def start(self, *, timeout: float = 120) -> None:
        if self.is_running():
            return
        if not (self.data_dir / "PG_VERSION").exists():
            raise ClusterError(f"{self.data_dir} holds no PostgreSQL cluster")
        if port_in_use(self.port):
            raise ClusterError(f"port {self.port} is in use by another process; "
                               f"cannot start the cluster in {self.data_dir}")
        make_owned_dir(self.socket_dir)
        make_owned_dir(self.log_file.parent, 0o750)
        ident = server_identity()
        with open(self.log_file, "ab") as log:
            self._proc = spawn(
                postgres_argv(self.bins, self.data_dir, self.port, self.socket_dir, self.settings),
                run_as=ident, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=child_env(self.env, ident), cwd=self.data_dir)
        # recorded before the server writes postmaster.pid, so a run killed mid-start leaves
        # a pid that the next stop can check and signal (never a search by command line)
        write_atomic(self.spawned_file, f"{self._proc.pid}\n")
        try:
            wait_until(self._ready, timeout=timeout, interval=0.02, max_interval=0.2,
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
            raise ClusterError(f"PostgreSQL exited during start-up: {self._log_reason()}")
        if not (self.socket_dir / f".s.PGSQL.{self.port}").exists():
            return False
        try:
            with conn.connect(self.conninfo("postgres"), timeout=2) as c:
                c.execute("select 1")
            return True
        except ConnectError as exc:
            if "starting up" in exc.message or "recovery" in exc.message:
                return False
            return False

    def _log_reason(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-40:]
        except OSError:
            return "no log"
        for line in reversed(lines):
            if "Address already in use" in line or "could not bind" in line:
                return f"port {self.port} is in use"
            if "lock file" in line and "already exists" in line:
                return "the data directory is in use by another server"
        fatal = [ln for ln in lines if re.search(r"\b(FATAL|PANIC)\b", ln)]
        return (fatal[-1] if fatal else (lines[-1] if lines else "empty log")).strip()

    def stop(self, *, timeout: float = 60) -> bool:
        """Fast shutdown; if it does not finish, immediate; then SIGKILL of its process group.
        Returns True when a running server was stopped."""
        pid = self.pid()
        if pid is None:
            self._reap()
            return False
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 15.0), (signal.SIGKILL, 15.0)):
            with contextlib.suppress(ProcessLookupError):
                if sig is signal.SIGKILL:
                    os.killpg(pid, sig)
                else:
                    os.kill(pid, sig)
            try:
                wait_until(partial(self._gone, pid), timeout=wait, interval=0.02,
                           what="server exit")
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
        self.stop(timeout=30)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # ---- facts ----------------------------------------------------------------------------
    def system_identifier(self) -> str:
        out = run([self.bins.path("pg_controldata"), str(self.data_dir)], timeout=30,
                  env={"LC_ALL": "C"}).stdout
        m = re.search(r"Database system identifier:\s+(\d+)", out)
        if not m:
            raise ClusterError(f"pg_controldata could not read {self.data_dir}")
        return m.group(1)


def _conf_value(value: str) -> str:
    if re.fullmatch(r"-?\d+(\.\d+)?|on|off|true|false", value):
        return value
    return "'" + value.replace("'", "''") + "'"
