"""Real PostgreSQL for every test: clusters are initdb'd in a temporary directory that the
unprivileged server user can reach (pytest's own tmp_path is mode 0700 under root), and every
cluster a test starts is stopped by the same run. A final check fails the run if any process
still references the test directory."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from spectral.pg.binaries import PgBinaries, find_binaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.osuser import make_owned_dir

SYSTEM_PG15 = Path("/usr/lib/postgresql/15/bin")
SPECTRAL = str(Path(sys.executable).parent / "spectral")


def _processes_under(path: Path) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmd:
            found.append(f"{pid}: {cmd.strip()}")
    return found


@pytest.fixture(scope="session")
def base_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="spectral-tests-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    left = _processes_under(path)
    for line in left:  # stop by pid what a failing test left behind, then fail loudly
        pid = int(line.split(":", 1)[0])
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, 9)
    shutil.rmtree(path, ignore_errors=True)
    assert not left, f"processes left running by the tests: {left}"


@pytest.fixture
def work_dir(base_dir: Path, request: pytest.FixtureRequest) -> Path:
    """A per-test directory reachable by the server user."""
    path = Path(tempfile.mkdtemp(prefix=request.node.name[:40] + "-", dir=base_dir))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def bins() -> PgBinaries:
    return find_binaries(None)


@pytest.fixture(scope="session")
def pg15() -> PgBinaries:
    if not (SYSTEM_PG15 / "postgres").exists():
        pytest.skip(f"no system PostgreSQL 15 at {SYSTEM_PG15} (apt-get install postgresql-15)")
    return find_binaries(SYSTEM_PG15)


ClusterFactory = Callable[..., Cluster]


def _make_cluster(root: Path, bins: PgBinaries, name: str, started: list[Cluster]) -> Cluster:
    d = make_owned_dir(root / name, 0o755)
    c = Cluster(bins, d / "data", socket_dir_for(d / "run"), free_port(),
                d / "log" / "postgres.log")
    c.initdb(conf={"wal_level": "replica", "fsync": "off"})
    c.start()
    started.append(c)
    return c


@pytest.fixture
def make_cluster(work_dir: Path, bins: PgBinaries) -> Iterator[ClusterFactory]:
    started: list[Cluster] = []
    counter = iter(range(1000))

    def factory(b: PgBinaries | None = None) -> Cluster:
        return _make_cluster(work_dir, b or bins, f"c{next(counter)}", started)

    yield factory
    for c in started:
        c.stop(timeout=20)


@pytest.fixture(scope="session")
def reference_cluster(base_dir: Path, bins: PgBinaries) -> Iterator[Cluster]:
    """One migrated, seeded (scale 1) and authored reference database for read-only tests."""
    from spectral.refdb.author import author
    from spectral.refdb.migrate import migrate
    from spectral.refdb.seed import seed

    started: list[Cluster] = []
    c = _make_cluster(base_dir, bins, "reference", started)
    try:
        with c.connect() as conn:
            migrate(conn)
        seed(c.conninfo(), 1)
        with c.connect() as conn:
            author(conn)
        yield c
    finally:
        c.stop(timeout=20)


def spectral(*args: str, cwd: Path, env: dict[str, str] | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTRAL_TEST")}
    full_env.update(env or {})
    full_env.setdefault("COLUMNS", "200")
    return subprocess.run([SPECTRAL, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)


def table_digests(conninfo: str, schemas: tuple[str, ...] = ("auth", "core", "worlds",
                                                              "platform")) -> dict[str, str]:
    """md5 of every table's rows in a fixed order: equal digests mean byte-identical contents."""
    from spectral.pg.conn import connect

    out = {}
    with connect(conninfo) as conn:
        conn.execute("set timezone = 'UTC'")
        tables = conn.execute(
            "select format('%%I.%%I', n.nspname, c.relname) from pg_class c join pg_namespace n "
            "on n.oid = c.relnamespace where c.relkind = 'r' and n.nspname = any(%s) "
            "order by 1", (list(schemas),)).fetchall()
        for (t,) in tables:
            row = conn.execute(f"select count(*), md5(coalesce(string_agg(x, E'\\n' order by x), "
                               f"'')) from (select t::text as x from {t} t) s").fetchone()
            assert row is not None
            out[t] = f"{row[0]}:{row[1]}"
    return out
