"""Regression tests for issue 27's defects 8, 9 and 10 and the port race: every value spectral
writes into a PostgreSQL configuration file is quoted for PostgreSQL's lexer, every path works
with spaces and quotes in it, `--pause` without a target is refused, and a server whose chosen
port was taken meanwhile starts on another one. Each test failed on the code before its fix."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import SYSTEM_PG15, _processes_under, local_provider, notes_environment, spectral
from conftest import sql as env_sql
from spectral.errors import ClusterError
from spectral.pg import cluster as cluster_mod
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster, socket_dir_for
from spectral.pg.conn import connect
from spectral.pg.osuser import make_owned_dir
from spectral.providers.local.provider import LocalProvider
from spectral.recovery_target import NameTarget

ODD = "my folder/it's \"odd\""      # a space, a single and a double quote
NAMES = ("back\\slash", "a'b\\'c", "tab\there", "q\"uote")


def on(dsn: str, query: str) -> list[tuple[Any, ...]]:
    with connect(dsn) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


# ---- 9: every value written into a configuration file is quoted for PostgreSQL's lexer -------
def test_conf_quote_doubles_quotes_and_escapes_backslashes() -> None:
    from spectral.pg.cluster import conf_quote, directory_list_item

    assert conf_quote("plain") == "'plain'"
    assert conf_quote("it's") == "'it''s'"
    assert conf_quote("back\\slash") == "'back\\\\slash'"
    assert conf_quote("a'b\\'c") == "'a''b\\\\''c'"
    assert conf_quote("two\nlines") == "'two\\nlines'"
    assert directory_list_item(Path("/s")) == "/s"
    assert directory_list_item(Path('/a b,c/"q"')) == '"/a b,c/""q"""'


def test_values_with_quotes_and_backslashes_reach_the_server_unchanged(make_cluster: Any
                                                                       ) -> None:
    """What the server reads back is exactly what was written (its own lexer is the judge)."""
    c: Cluster = make_cluster()
    values = {f"spectral_test.v{i}": v for i, v in enumerate(
        (*NAMES, "C:\\dir\\", "'", "\\", "x\ny", "/a b/it's \"odd\"/%f"))}
    c.write_conf({"wal_level": "replica", "fsync": "off", **values})
    c.stop()
    c.start()
    for key, value in values.items():
        assert on(c.conninfo(), f"select current_setting('{key}')")[0][0] == value


@pytest.fixture
def env(work_dir: Path, bins: PgBinaries) -> Iterator[LocalProvider]:
    with local_provider(work_dir, bins, "items") as provider:
        yield provider


def test_restore_points_named_with_backslashes_and_quotes(env: LocalProvider) -> None:
    """Each restore point is reached by its own name: the rows committed before it, none of
    the ones after it (before the fix: a syntax error, or refused as not reached)."""
    env.backup()
    for i, name in enumerate(NAMES):
        env_sql(env, f"insert into items values ({1000 + i}, 'before')")
        with connect(env.local.cluster().conninfo()) as conn:
            conn.execute("select pg_create_restore_point(%s)", (name,))
        env_sql(env, f"insert into items values ({2000 + i}, 'after')")
    for i, name in enumerate(NAMES):
        inst = env.restore(NameTarget(name), keep=False)
        try:
            ids = {r[0] for r in on(inst.dsn, "select id from items where id >= 1000")}
            assert ids == {1000 + j for j in range(i + 1)} | {2000 + j for j in range(i)}, name
            assert inst.reached.get("stopped"), inst.reached
        finally:
            env.teardown(inst.id)


# ---- 8: --pause without a target ---------------------------------------------------------------
def test_pause_without_a_target_is_refused_before_anything_runs(work_dir: Path) -> None:
    with notes_environment(work_dir) as environment:
        provider = environment.provider
        assert isinstance(provider, LocalProvider)
        res = spectral("dr", "restore", "--latest", "--pause", cwd=work_dir, timeout=180)
        assert res.returncode == 2, (res.stdout, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "--pause" in res.stderr and "target" in res.stderr
        assert provider.instances() == [] and provider.orphans() == []
        instances = provider.local.paths.instances_dir
        assert not instances.exists() or list(instances.iterdir()) == []
        res = spectral("dr", "restore", "--target-time", "2026-01-01T00:00:00Z", "--pause",
                       "--in-place", "--yes", cwd=work_dir, timeout=180)
        assert res.returncode == 2 and "--pause" in res.stderr, (res.stdout, res.stderr)


# ---- 10: a working folder whose path has a space and quotes --------------------------------
@contextlib.contextmanager
def odd_folder() -> Iterator[Path]:
    """A short root (so the server's socket stays inside the folder, not under /tmp), with a
    space, a single quote and a double quote in the working folder's path."""
    root = Path(tempfile.mkdtemp(prefix="sp-", dir="/tmp"))
    root.chmod(0o755)
    folder = root / ODD
    folder.mkdir(parents=True)
    folder.parent.chmod(0o755)
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        left = _processes_under(root)
        shutil.rmtree(root, ignore_errors=True)
        assert left == [], left


def cli(folder: Path, *args: str, expect: int = 0) -> Any:
    res = spectral(*args, cwd=folder, timeout=400)
    assert res.returncode == expect, (args, res.stdout, res.stderr)
    return json.loads(res.stdout) if "--json" in args else res.stdout


def commit_time(dsn: str, row: int) -> str:
    with connect(dsn, autocommit=False) as conn:
        conn.execute("insert into orders values (%s)", (row,))
        xid = conn.execute("select txid_current()").fetchone()[0]  # type: ignore[index]
        conn.commit()
    at = on(dsn, f"select pg_xact_commit_timestamp('{xid}'::xid)")[0][0]
    return str(at.isoformat())


def source_dsn(folder: Path, state: Path) -> str:
    """The local cluster's conninfo, built by the test from the folder (not by spectral)."""
    port = json.loads((state / "cluster" / "cluster.json").read_text())["port"]
    host = str(socket_dir_for(state / "cluster" / "run"))
    return psycopg_conninfo(host=host, port=port, user="postgres", dbname="postgres")


def psycopg_conninfo(**kw: Any) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(**kw)


def test_local_up_backup_pitr_and_drill_in_a_folder_with_spaces_and_quotes() -> None:
    with odd_folder() as folder:
        (folder / "spectral.toml").write_text(
            '[environments.odd]\nprovider = "local"\nschemas = ["public"]\n'
            'load_bearing_tables = ["public.orders"]\n')
        state = folder / ".spectral" / "odd"
        assert " " in str(socket_dir_for(state / "cluster" / "run"))   # not moved to /tmp
        try:
            up = cli(folder, "local", "up", "--json")
            assert up["running"], up
            dsn = source_dsn(folder, state)
            assert on(up["dsn"], "select 1") == [(1,)]   # the dsn shown works as given
            on(dsn, "create table orders (id int primary key)")
            on(dsn, "insert into orders values (1)")
            cli(folder, "dr", "backup", "--json")
            kept = commit_time(dsn, 2)
            time.sleep(0.05)
            commit_time(dsn, 3)
            inst = cli(folder, "dr", "restore", "--target-time", kept, "--json")
            assert [r[0] for r in on(inst["dsn"], "select id from orders order by id")] == [1, 2]
            cli(folder, "dr", "teardown", inst["id"])
            drill = cli(folder, "dr", "drill", "functional", "--json")
            assert drill["outcome"] == "pass", drill
            # the archive (archive_command / basic_archive in the odd folder) holds the WAL
            assert any((state / "backups" / "wal").iterdir())
        finally:
            spectral("dr", "teardown", "--all", cwd=folder)
            spectral("local", "down", cwd=folder)


needs_pgbackrest = pytest.mark.skipif(
    shutil.which("pgbackrest") is None or not (SYSTEM_PG15 / "postgres").exists(),
    reason="needs pgbackrest and Debian's PostgreSQL 15 (python3 dev.py test installs both)")


@needs_pgbackrest
def test_pgbackrest_in_a_folder_with_spaces_and_quotes_and_odd_restore_point_names() -> None:
    """pgBackRest's configuration, archive-push (archive_command) and archive-get
    (restore_command) with the odd folder in every path; restore points with quotes and a
    backslash reached by name."""
    with odd_folder() as folder:
        (folder / "spectral.toml").write_text(
            f'[environments.pgb]\nprovider = "pgbackrest"\npg_bin_dir = "{SYSTEM_PG15}"\n'
            'schemas = ["public"]\nload_bearing_tables = ["public.orders"]\n'
            '[environments.pgb.pgbackrest]\nstanza = "odd"\n'
            '[[environments.pgb.pgbackrest.repositories]]\ntype = "posix"\n')
        state = folder / ".spectral" / "pgb"
        try:
            cli(folder, "local", "up", "--json")
            dsn = source_dsn(folder, state)
            on(dsn, "create table orders (id int primary key)")
            cli(folder, "dr", "backup", "--json")
            for i, name in enumerate(NAMES[:2]):
                on(dsn, f"insert into orders values ({10 + i})")
                on(dsn, f"select pg_create_restore_point($${name}$$)")
            on(dsn, "insert into orders values (99)")
            on(dsn, "select pg_switch_wal()")
            for i, name in enumerate(NAMES[:2]):
                inst = cli(folder, "dr", "restore", "--target-name", name, "--json")
                ids = [r[0] for r in on(inst["dsn"], "select id from orders order by id")]
                assert ids == [10 + j for j in range(i + 1)], (name, ids)
                cli(folder, "dr", "teardown", inst["id"])
            drill = cli(folder, "dr", "drill", "functional", "--json")
            assert drill["outcome"] == "pass", drill
        finally:
            spectral("dr", "teardown", "--all", cwd=folder)
            spectral("local", "down", cwd=folder)


# ---- the port race: a chosen port taken before the server binds it -----------------------------
@contextlib.contextmanager
def held_port() -> Iterator[int]:
    """A port some other process listens on (as another test's server would)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def _new_cluster(root: Path, bins: PgBinaries, port: int, chosen: bool) -> Cluster:
    d = make_owned_dir(root / f"c{port}", 0o755)
    c = Cluster(bins, d / "data", socket_dir_for(d / "run"), port, d / "log" / "postgres.log",
                port_chosen=chosen)
    c.initdb(conf={"fsync": "off"})
    return c


def test_a_chosen_port_taken_meanwhile_is_replaced(work_dir: Path, bins: PgBinaries,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The race seen in CI: free_port() released the port and another server took it before
    this one bound it. The server must come up on another port (the check before the start
    is raced too, so the bind failure itself is what is handled)."""
    with held_port() as taken:
        c = _new_cluster(work_dir, bins, taken, chosen=True)
        monkeypatch.setattr(cluster_mod, "port_in_use", lambda port: False)  # lost the race
        try:
            c.start(timeout=60)
            assert c.port != taken
            assert on(c.conninfo(), "select current_setting('port')::int")[0][0] == c.port
        finally:
            c.stop()


def test_the_environment_and_a_restore_survive_a_port_taken_meanwhile(
        work_dir: Path, bins: PgBinaries, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment's first start and a restored instance's start both lose the race once:
    each comes up on another port and says which (cluster.json, the instance's dsn)."""
    from spectral.providers.local import environment as env_mod
    from spectral.providers.local import provider as provider_mod

    with held_port() as taken:
        calls = {"n": 0}
        real = cluster_mod.free_port

        def first_taken() -> int:
            calls["n"] += 1
            return taken if calls["n"] == 1 else real()

        monkeypatch.setattr(env_mod, "free_port", first_taken)
        monkeypatch.setattr(cluster_mod, "free_port", real)
        monkeypatch.setattr(cluster_mod, "port_in_use", lambda port: False)
        with local_provider(work_dir, bins, "items") as p:
            port = p.local.cluster().port
            assert port != taken
            meta = json.loads(p.local.paths.meta_file.read_text())
            assert meta["port"] == port
            p.backup()
            calls["n"] = 0
            monkeypatch.setattr(provider_mod, "free_port", first_taken)
            from spectral.recovery_target import LatestTarget

            inst = p.restore(LatestTarget(), keep=False)
            assert inst.port != taken
            assert on(inst.dsn, "select count(*) from items")[0][0] == 100
            assert {i.port for i in p.instances()} == {inst.port}


def test_a_port_given_explicitly_that_is_taken_is_a_usage_error(work_dir: Path,
                                                               bins: PgBinaries) -> None:
    with held_port() as taken:
        c = _new_cluster(work_dir, bins, taken, chosen=False)
        with pytest.raises(ClusterError, match=f"port {taken} is in use") as raised:
            c.start(timeout=30)
        assert raised.value.exit_code == 2
        assert not c.is_running()
