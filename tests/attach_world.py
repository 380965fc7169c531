"""A team's own backups, set up the way a team would, never through spectral: a PostgreSQL
the test starts itself with pgBackRest in its own configuration file (its own stanza,
repository, log and lock paths, archive-push as archive_command), a role for spectral with
only pg_read_all_data and pg_monitor, and fingerprints of everything spectral must never
change: every repository file's bytes, the configuration file and the live pg_settings."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.conn import connect
from spectral.pg.osuser import make_owned_dir, server_identity
from spectral.runner import run

STANZA = "team"


@dataclass
class TeamStanza:
    """The team's server and its pgBackRest stanza."""

    root: Path
    cluster: Cluster
    conf: Path

    @property
    def repo(self) -> Path:
        return self.root / "repo"

    @property
    def dsn(self) -> str:
        """What spectral is given: the drill role, no superuser."""
        return (f"host={self.cluster.socket_dir} port={self.cluster.port} user=drill "
                f"dbname=app")

    def pgbackrest(self, *args: str, timeout: float = 300) -> str:
        """The team's own pgBackRest, as the team runs it."""
        res = run(["pgbackrest", f"--config={self.conf}", f"--stanza={STANZA}", *args],
                  timeout=timeout, run_as=server_identity(), forks=True)
        return res.stdout

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with connect(self.cluster.conninfo("app")) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def commit(self, row: int) -> tuple[int, datetime]:
        """One row in its own transaction: its xid and commit time."""
        with connect(self.cluster.conninfo("app"), autocommit=False) as conn:
            conn.execute("insert into app.ledger values (%s, 'x')", (row,))
            xid = int(conn.execute("select txid_current()").fetchone()[0])  # type: ignore[index]
            conn.commit()
        at = self.sql(f"select pg_xact_commit_timestamp('{xid}'::xid)")[0][0]
        return xid, at

    def archived_now(self) -> str:
        """Switch and wait until archive-push has the segment (the team's archive is current)."""
        name = str(self.sql("select pg_walfile_name(pg_switch_wal() - 1)")[0][0])
        deadline = time.monotonic() + 60
        # the archiver marks what it archived (pg_stat_archiver's last name may be a backup's
        # history file, …02.00000028.backup, archived before the segment it names)
        pg_wal = self.cluster.data_dir / "pg_wal"

        def done() -> bool:
            return (pg_wal / "archive_status" / f"{name}.done").exists() or \
                not (pg_wal / name).exists()

        while not done():
            assert time.monotonic() < deadline, "archive-push did not catch up"
            time.sleep(0.1)
        return name

    # ---- what spectral must never change ---------------------------------------------------
    def repository_files(self) -> dict[str, str]:
        """Every file of the repository -> the SHA-256 of its bytes."""
        return {str(p.relative_to(self.repo)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(self.repo.rglob("*")) if p.is_file()}

    def live_settings(self) -> list[tuple[str, str]]:
        with connect(self.cluster.conninfo("app")) as conn:
            return [(str(n), str(s)) for n, s in conn.execute(
                "select name, coalesce(setting, '') from pg_settings order by name")]

    def untouched(self) -> tuple[dict[str, str], list[tuple[str, str]], str]:
        conf = hashlib.sha256(self.conf.read_bytes()).hexdigest()
        return self.repository_files(), self.live_settings(), conf


def in_team_file(cluster: Cluster, settings: dict[str, str]) -> None:
    """Archiving set where a team sets it, in postgresql.conf itself (which a backup carries),
    not in the file spectral writes for a cluster of its own."""
    main = cluster.data_dir / "postgresql.conf"
    lines = "".join(f"{k} = '{v}'\n" for k, v in settings.items())
    main.write_text(lines + main.read_text())


def team_config(root: Path, cluster: Cluster) -> str:
    return (f"[global]\nrepo1-path={root / 'repo'}\nrepo1-retention-full=99\n"
            f"log-path={root / 'pgbr-log'}\nlock-path={root / 'pgbr-lock'}\n"
            f"spool-path={root / 'pgbr-spool'}\nlog-level-file=detail\nstart-fast=y\n"
            f"compress-type=lz4\n\n[{STANZA}]\npg1-path={cluster.data_dir}\n"
            f"pg1-socket-path={cluster.socket_dir}\npg1-port={cluster.port}\npg1-user=postgres\n")


def initdb_team(cluster: Cluster, conf: dict[str, str], wal_segsize_mb: int | None,
                first_wal: str | None) -> None:
    """initdb as the team ran it: `wal_segsize_mb`, initdb --wal-segsize; `first_wal`, the
    segment its WAL starts in (pg_resetwal -l before the first start: a cluster whose WAL is
    far along, near a log id's end)."""
    cluster.initdb(conf=conf, wal_segsize_mb=wal_segsize_mb)
    if first_wal is not None:
        run([cluster.bins.path("pg_resetwal"), "-l", first_wal, str(cluster.data_dir)],
            timeout=60, run_as=server_identity())


@contextlib.contextmanager
def team_stanza(work_dir: Path, bins: PgBinaries, wal_segsize_mb: int | None = None,
                first_wal: str | None = None) -> Iterator[TeamStanza]:
    """The team's server (running) with one full backup of app.ledger (ids 1..100); the last
    two: initdb_team's."""
    root = make_owned_dir(work_dir / "team", 0o755)
    for d in ("repo", "pgbr-log", "pgbr-lock", "pgbr-spool"):
        make_owned_dir(root / d, 0o750)
    cluster = Cluster(bins, root / "data", socket_dir_for(root / "run"), free_port(),
                      root / "log" / "postgres.log", port_chosen=True)
    conf = root / "pgbackrest.conf"
    initdb_team(cluster, {"wal_level": "replica", "track_commit_timestamp": "on",
                          "max_wal_senders": "3"}, wal_segsize_mb, first_wal)
    in_team_file(cluster, {"archive_mode": "on", "archive_command": f"pgbackrest --config={conf} "
                           f"--stanza={STANZA} archive-push %p"})
    conf.write_text(team_config(root, cluster))
    cluster.start()
    team = TeamStanza(root, cluster, conf)
    try:
        with connect(cluster.conninfo()) as c:
            c.execute("create database app")
        team.sql("create schema app; create table app.ledger (id int primary key, note text);"
                 "insert into app.ledger select g, 'base' from generate_series(1, 100) g;"
                 "create role drill login; grant pg_read_all_data, pg_monitor to drill")
        team.pgbackrest("stanza-create")
        team.pgbackrest("backup", "--type=full")
        yield team
    finally:
        cluster.stop(timeout=30, discard=True)


@dataclass
class TeamArchive:
    """The team's server, its WAL folder (filled by its archive_command) and base backups."""

    root: Path
    cluster: Cluster
    compress: str | None       # how the archive_command stores segments: None, "gz", ...

    @property
    def base(self) -> Path:
        return self.root / "base"

    @property
    def wal(self) -> Path:
        return self.root / "wal"

    @property
    def dsn(self) -> str:
        return (f"host={self.cluster.socket_dir} port={self.cluster.port} user=drill "
                f"dbname=app")

    sql = TeamStanza.sql
    commit = TeamStanza.commit
    archived_now = TeamStanza.archived_now
    live_settings = TeamStanza.live_settings

    def basebackup(self, name: str, *args: str) -> Path:
        """pg_basebackup into base/<name>, as the team runs it (`args`: -Ft, --compress ...)."""
        dest = self.base / name
        run([str(self.cluster.bins.path("pg_basebackup")), "-D", str(dest), "-c", "fast",
             "-h", str(self.cluster.socket_dir), "-p", str(self.cluster.port), "-U",
             self.cluster.superuser, *args], timeout=600, run_as=server_identity())
        return dest

    def untouched(self) -> tuple[dict[str, str], list[tuple[str, str]], str]:
        files = {str(p.relative_to(self.root)): hashlib.sha256(p.read_bytes()).hexdigest()
                 for d in (self.base, self.wal) for p in sorted(d.rglob("*")) if p.is_file()}
        return files, self.live_settings(), ""


def archive_command(wal: Path, compress: str | None) -> str:
    if compress is None:
        return f"test ! -f {wal}/%f && cp %p {wal}/%f"
    program = {"gz": "gzip", "lz4": "lz4", "zst": "zstd"}[compress]
    return f"test ! -f {wal}/%f.{compress} && {program} -c < %p > {wal}/%f.{compress}"


@contextlib.contextmanager
def team_archive(work_dir: Path, bins: PgBinaries, compress: str | None,
                 superuser: str = "postgres", wal_segsize_mb: int | None = None,
                 first_wal: str | None = None) -> Iterator[TeamArchive]:
    """The team's server (running), archiving into a folder, app.ledger holding ids 1..100; no
    base backup yet. `superuser`: the bootstrap role's name (initdb -U); the last two:
    initdb_team's."""
    root = make_owned_dir(work_dir / "team", 0o755)
    for d in ("base", "wal"):
        make_owned_dir(root / d, 0o750)
    cluster = Cluster(bins, root / "data", socket_dir_for(root / "run"), free_port(),
                      root / "log" / "postgres.log", superuser=superuser, port_chosen=True)
    initdb_team(cluster, {"wal_level": "replica", "track_commit_timestamp": "on",
                          "max_wal_senders": "5"}, wal_segsize_mb, first_wal)
    in_team_file(cluster, {"archive_mode": "on",
                           "archive_command": archive_command(root / "wal", compress)})
    cluster.start()
    team = TeamArchive(root, cluster, compress)
    try:
        with connect(cluster.conninfo()) as c:
            c.execute("create database app")
        team.sql("create schema app; create table app.ledger (id int primary key, note text);"
                 "insert into app.ledger select g, 'base' from generate_series(1, 100) g;"
                 "create role drill login; grant pg_read_all_data, pg_monitor to drill")
        yield team
    finally:
        cluster.stop(timeout=30, discard=True)
