from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from conftest import ClusterFactory
from spectral.errors import ClusterError
from spectral.pg.binaries import PgBinaries, parse_version
from spectral.pg.cluster import Cluster, free_port, initdb_argv, postgres_argv
from spectral.pg.control import control_fact


def test_parse_version() -> None:
    assert parse_version("postgres (PostgreSQL) 18.6\n") == (18, "18.6")
    assert parse_version("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)") == (15, "15.18")
    with pytest.raises(ClusterError):
        parse_version("not postgres")


def test_argv_builders_are_pure(bins: PgBinaries) -> None:
    argv = initdb_argv(bins, Path("/d"), "postgres", None)
    assert argv[1:5] == ["-D", "/d", "-U", "postgres"] and "--data-checksums" in argv
    assert "--auth-host=reject" in argv
    argv = postgres_argv(bins, Path("/d"), 5999, Path("/s"), {"fsync": "off"})
    assert argv[1:5] == ["-D", "/d", "-p", "5999"]
    assert "unix_socket_directories=/s" in argv and "fsync=off" in argv


def test_embedded_binaries_are_postgres_18(bins: PgBinaries) -> None:
    assert bins.major == 18 and bins.embedded
    for tool in ("pg_basebackup", "pg_receivewal", "pg_waldump", "pg_verifybackup",
                 "pg_combinebackup", "pgbench"):
        assert bins.has(tool), tool


def test_cluster_lifecycle_runs_unprivileged(make_cluster: ClusterFactory) -> None:
    c = make_cluster()
    pid = c.pid()
    assert pid is not None
    with c.connect() as conn:
        row = conn.execute("select current_setting('data_checksums'), "
                           "current_setting('server_version_num')::int").fetchone()
        assert row is not None and row[0] == "on" and row[1] >= 180000
        ident = conn.execute("select system_identifier::text from pg_control_system()")
        assert ident.fetchone() == (c.system_identifier(),)
    assert c.system_identifier() == control_fact(c.bins, c.data_dir, "Database system identifier")
    if os.geteuid() == 0:
        uid = int(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[0])
        assert uid != 0, "the server must not run as root"
        assert c.data_dir.stat().st_uid == uid
    assert c.stop() is True
    assert (c.pid() is None and not Path(f"/proc/{pid}/cmdline").exists()) or \
        "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
    assert c.stop() is False   # stopping a stopped cluster is a no-op


def test_port_in_use_is_a_clear_error(make_cluster: ClusterFactory) -> None:
    c = make_cluster()
    c.stop()
    c.port_chosen = False    # a port someone gave: never changed behind their back
    with socket.socket() as s:
        s.bind(("127.0.0.1", c.port))
        s.listen()
        with pytest.raises(ClusterError, match=f"port {c.port} is in use"):
            c.start()
    assert c.pid() is None


@pytest.mark.server
def test_initdb_refuses_a_non_empty_directory(work_dir: Path, bins: PgBinaries) -> None:
    data = work_dir / "data"
    data.mkdir()
    (data / "precious.txt").write_text("keep me")
    c = Cluster(bins, data, work_dir / "run", free_port(), work_dir / "log" / "pg.log")
    with pytest.raises(ClusterError, match="not empty"):
        c.initdb()
    assert (data / "precious.txt").read_text() == "keep me"


def test_immediate_fallback_when_fast_shutdown_is_blocked(make_cluster: ClusterFactory) -> None:
    """A session that holds a transaction open does not block stop(): fast shutdown
    terminates it; the call returns with nothing left running."""
    c = make_cluster()
    conn = c.connect(autocommit=False)
    conn.execute("select 1")
    try:
        assert c.stop(timeout=10)
        assert c.pid() is None
    finally:
        conn.close()


def test_system_postgres_15(make_cluster: ClusterFactory, pg15: PgBinaries) -> None:
    c = make_cluster(pg15)
    with c.connect() as conn:
        row = conn.execute("select current_setting('server_version_num')::int").fetchone()
        assert row is not None and 150000 <= row[0] < 160000
    assert c.system_identifier() == control_fact(pg15, c.data_dir, "Database system identifier")


@pytest.mark.server
def test_clusters_copied_from_one_template_keep_their_own_passwords(
        work_dir: Path, bins: PgBinaries) -> None:
    """The initdb template (SPECTRAL_INITDB_TEMPLATES, set for the whole test run) never
    carries a password from one cluster to the next."""
    import psycopg

    from spectral.pg import template
    from spectral.pg.osuser import make_owned_dir

    assert template.folder() is not None
    clusters = []
    try:
        for name, password in (("a", "first-secret"), ("b", "second'secret")):
            home = make_owned_dir(work_dir / name, 0o755)
            pw = home / "pw"
            pw.write_text(password)
            c = Cluster(bins, home / "data", home / "run", free_port(), home / "pg.log",
                        port_chosen=True)
            c.initdb(pwfile=pw)
            c.start()
            clusters.append((c, password))
        for c, password in clusters:
            with psycopg.connect(host="127.0.0.1", port=c.port, user="postgres",
                                 password=password, dbname="postgres") as conn:
                assert conn.execute("select 1").fetchone() == (1,)
        other = clusters[0][0]
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(host="127.0.0.1", port=other.port, user="postgres",
                            password=clusters[1][1], dbname="postgres")
        assert len(list(template.folder().iterdir())) >= 1   # type: ignore[union-attr]
    finally:
        for c, _ in clusters:
            c.stop()
