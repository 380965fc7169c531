"""Real PostgreSQL for every test: clusters are initdb'd in a temporary directory that the
unprivileged server user can reach (pytest's own tmp_path is mode 0700 under root), and every
cluster a test starts is stopped by the same run. A final check fails the run if any process
still references the test directory."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import scratch
from spectral.pg.binaries import PgBinaries, find_binaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.osuser import make_owned_dir

if TYPE_CHECKING:
    from spectral.environment import Environment
    from spectral.providers.local.provider import LocalProvider
    from supabase_emulator import Emulator, Server

SYSTEM_PG15 = Path("/usr/lib/postgresql/15/bin")
SPECTRAL = str(Path(sys.executable).parent / "spectral")
README_PATH = Path(__file__).parent.parent / "docs" / "design.md"   # the Python example


_TEMPLATES: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    """initdb once per set of options for the whole run (workers inherit the folder): every
    cluster a test or the tool creates is a copy (spectral/pg/template.py).

    A run started in the background of a shell (`cmd &`, nohup, some CI runners) inherits
    SIGINT ignored, and so would every `spectral` process a test starts: the tests of what
    Ctrl-C does would wait out their timeouts. Python's own handler is put back (a handler is
    reset to the default in a child at exec; an ignored signal would stay ignored)."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # pgBackRest retries a failed job at once, then 15 s later: a test restoring from a
    # repository it damaged on purpose waited that out every time. Its retries still run, a
    # second apart (an option pgBackRest marks internal: for tests, never set by spectral).
    os.environ.setdefault("PGBACKREST_JOB_RETRY_INTERVAL", "1")
    from spectral.pg import template

    if template.folder() is None:
        path = Path(tempfile.mkdtemp(prefix="spectral-initdb-", dir=scratch.root()))
        path.chmod(0o755)
        os.environ[template.ENV] = str(path)
        _TEMPLATES.append(path)


# `python3 dev.py test --fast` runs the tests that start no PostgreSQL server: those that use none
# of these fixtures and are not marked `server` (a test that starts one through the command
# line says so with @pytest.mark.server). In that run a server start fails the test, so a test
# that needs one and says nothing is found at once.
# (the modules' own fixtures of these names start one too: env, pgb, pgb_plain, ready, drilled,
# subject, cli, seeded, vcluster)
SERVER_FIXTURES = {"make_cluster", "reference_cluster", "project", "world", "pg15", "env", "pgb",
                   "pgb_plain", "ready", "drilled", "subject", "cli", "seeded", "vcluster"}
FAST = "SPECTRAL_TEST_FAST"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)
    # each xdist worker collects (and so orders) the run itself, and knows how many there are
    _slow_first(items, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def _slow_first(items: list[pytest.Item], workers: int) -> None:
    """The tests marked `slow` start first, spread over the heads of the workers' shares:
    xdist's worksteal gives each worker one contiguous share, in order (each takes what is left
    divided by the workers still to serve), and a worker that runs dry takes tests from another's
    tail, so a long test left for the end would run alone while the others wait."""
    slow = [i for i in items if i.get_closest_marker("slow")]
    if not slow or workers < 1:
        return
    rest = [i for i in items if not i.get_closest_marker("slow")]
    heads = [slow[w::workers] for w in range(workers)]
    ordered: list[pytest.Item] = []
    left = len(items)
    for w in range(workers):
        share = left // (workers - w)
        take = max(0, share - len(heads[w]))
        ordered += heads[w] + rest[:take]
        rest = rest[take:]
        left -= len(heads[w]) + take
    items[:] = ordered + rest


@pytest.fixture(scope="session", autouse=True)
def _no_server_in_the_fast_loop() -> Iterator[None]:
    """Session-wide, so that module and session fixtures are held to it too."""
    if os.environ.get(FAST) != "1":
        yield
        return

    def refuse(*args: object, **kwargs: object) -> None:
        pytest.fail("this test starts a PostgreSQL server: mark it @pytest.mark.server (it is "
                    "not one for `dev.py test --fast`)")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Cluster, "initdb", refuse)
        patch.setattr(Cluster, "start", refuse)
        yield


def pytest_unconfigure(config: pytest.Config) -> None:
    for path in _TEMPLATES:
        shutil.rmtree(path, ignore_errors=True)


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
    path = Path(tempfile.mkdtemp(prefix="spectral-tests-", dir=scratch.root()))
    path.chmod(0o755)
    yield path
    left = _processes_under(path)
    for line in left:  # stop by pid what a failing test left behind, then fail loudly
        pid = int(line.split(":", 1)[0])
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, 9)
    shutil.rmtree(path, ignore_errors=True)
    assert not left, f"processes left running by the tests: {left}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Iterator[pytest.TestReport]:
    """Each phase's report on the test, for work_dir to know whether it passed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def work_dir(base_dir: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A per-test directory reachable by the server user. In memory (tests/scratch.py), a
    passing test's folder is removed at its end; a failing one's is kept until the run ends. On
    disk every folder is kept until then: removing them one by one made the suite ~2 min
    slower in session 12 (ext4 with `discard`), and a run writes ~55 GB meanwhile."""
    path = Path(tempfile.mkdtemp(prefix=request.node.name[:40] + "-", dir=base_dir))
    path.chmod(0o755)
    yield path
    call = getattr(request.node, "report_call", None)
    if scratch.in_memory() and call is not None and call.passed and not _processes_under(path):
        shutil.rmtree(path, ignore_errors=True)


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
                d / "log" / "postgres.log", port_chosen=True)   # taken meanwhile: another
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
        c.stop(timeout=20, discard=True)


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
        c.stop(timeout=20, discard=True)


def spectral(*args: str, cwd: Path, env: dict[str, str] | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would: in this process (tests/inprocess.py) unless
    the test needs a process of its own. A --json output is checked against its schema."""
    import inprocess
    import output_schemas

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SPECTRAL_TEST")}
    full_env.update(env or {})
    full_env.setdefault("COLUMNS", "200")
    if not inprocess.needs_process(args, env or {}):
        done = inprocess.run(SPECTRAL, args, cwd, full_env, timeout)
    else:
        done = subprocess.run([SPECTRAL, *args], cwd=cwd, env=full_env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    # every --json output follows its published schema (docs/schemas)
    output_schemas.validate_run(args, done.returncode, done.stdout, done.stderr)
    return done


def bare_local(work_dir: Path) -> dict[str, Any]:
    """The embedded default environment up with one backup and an empty `core` schema: what a
    test of the WAL stream needs, without the demo's seeding and drill (~5 s less). The local
    status document (dsn, state_dir, ...)."""
    from spectral.pg.conn import connect

    up = spectral("local", "up", cwd=work_dir)
    assert up.returncode == 0, up.stderr
    info: dict[str, Any] = json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)
    with connect(info["dsn"]) as conn:
        conn.execute("create schema if not exists core")
    backup = spectral("dr", "backup", cwd=work_dir)
    assert backup.returncode == 0, backup.stderr
    return info


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


# ---- providers: a local environment, and a Supabase project on the emulator ----------------
@contextlib.contextmanager
def local_provider(work_dir: Path, bins: PgBinaries, table: str) -> Iterator[LocalProvider]:
    """A running local environment with `table` (id int primary key, note text) holding 100
    rows; its instances torn down and its server stopped afterwards."""
    from spectral.providers.local.environment import LocalEnvironment
    from spectral.providers.local.provider import LocalProvider

    local = LocalEnvironment("t", work_dir / "state", bins)
    local.up()
    provider = LocalProvider(local)
    sql(provider, f"create table {table} (id int primary key, note text)")
    sql(provider, f"insert into {table} select g, 'base' from generate_series(1, 100) g")
    try:
        yield provider
    finally:
        for inst in provider.instances():
            provider.teardown(inst.id)
        local.down()
        assert _processes_under(work_dir) == []


def sql(p: LocalProvider, query: str) -> list[tuple[Any, ...]]:
    from spectral.pg.conn import connect

    with connect(p.local.cluster().conninfo()) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


SUPABASE_TOKEN = "sbp_emulatortoken0123456789abcdef"


@pytest.fixture
def project(work_dir: Path, bins: PgBinaries) -> Iterator[tuple[Path, Emulator, str, Server]]:
    """Production on Supabase (the emulator, backed by a real cluster) with the reference schema
    and core.notes, one backup, and a spectral.toml naming it as environment "production"."""
    from spectral.pg.conn import connect
    from spectral.providers.local.environment import LocalEnvironment
    from spectral.providers.local.provider import LocalProvider
    from spectral.refdb.migrate import migrate
    from supabase_emulator import EMU_REF, Emulator, Project, Server

    local = LocalEnvironment("emu", work_dir / "emu-state", bins)
    local.up()
    provider = LocalProvider(local)
    sockets = Path(tempfile.mkdtemp(prefix="emu-", dir="/tmp"))   # short socket paths
    emulator = Emulator(SUPABASE_TOKEN, {EMU_REF: Project(EMU_REF, provider)},
                        sockets=sockets)
    dsn = emulator.expose(EMU_REF, local.cluster().conninfo())
    with connect(dsn) as conn:
        migrate(conn)            # the reference schema: the core contract holds
        conn.execute("create table core.notes (id int primary key, note text)")
        conn.execute("insert into core.notes values (1, 'base')")
    provider.backup()
    try:
        with Server(emulator) as server:
            (work_dir / "spectral.toml").write_text(
                f'# production on Supabase (emulated)\n[environments.production]\n'
                f'provider = "supabase"\nproject_ref = "{EMU_REF}"\nposture = "pitr"\n'
                f'dsn = "{dsn}"\naccess_token = "env:SUPABASE_TEST_TOKEN"\n'
                f'api_url = "{server.url}"\nschemas = ["core"]\nload_bearing_tables = '
                f'["core.notes"]\n')
            yield work_dir, emulator, dsn, server
    finally:
        emulator.close()
        local.down()
        shutil.rmtree(sockets, ignore_errors=True)
    assert _processes_under(work_dir) == []
    assert emulator.spec_errors == [], "\n".join(dict.fromkeys(emulator.spec_errors))


@pytest.fixture
def world(make_cluster: ClusterFactory) -> tuple[Cluster, str]:
    """A database no one here wrote the tool for (tests/second_world.sql), in its own cluster."""
    from spectral.pg.conn import connect, with_dbname

    c = make_cluster()
    with c.connect() as conn:
        conn.execute("create database shop")
    dsn = with_dbname(c.conninfo(), "shop")
    with connect(dsn) as conn:
        conn.execute((Path(__file__).parent / "second_world.sql").read_text().encode())
    return c, dsn


@contextlib.contextmanager
def notes_environment(work_dir: Path, posture: str = "pitr") -> Iterator[Environment]:
    """A local environment "staging" from a spectral.toml: the reference schema (the core
    contract holds) plus core.notes with one row, running, with one backup; stopped after."""
    from spectral.config.load import load_config
    from spectral.environment import open_environment
    from spectral.pg.conn import connect
    from spectral.providers.local.provider import LocalProvider
    from spectral.refdb.migrate import migrate

    (work_dir / "spectral.toml").write_text(
        f'[environments.staging]\nprovider = "local"\nposture = "{posture}"\n'
        f'schemas = ["core"]\nload_bearing_tables = ["core.notes"]\n')
    environment = open_environment(load_config(None, cwd=work_dir), "staging")
    provider = environment.provider
    assert isinstance(provider, LocalProvider)
    provider.local.up()
    try:
        with connect(provider.local.cluster().conninfo()) as conn:
            migrate(conn)
            conn.execute("create table core.notes (id int primary key, note text)")
            conn.execute("insert into core.notes values (1, 'base')")
        provider.backup()
        yield environment
    finally:
        for inst in provider.instances():
            provider.teardown(inst.id)
        provider.local.down()


@pytest.fixture
def local_reference(work_dir: Path, make_cluster: ClusterFactory) -> tuple[Path, str]:
    """A spectral.toml naming a reference database (migrated, no seed) by its DSN."""
    from spectral.refdb.migrate import migrate

    source = make_cluster()
    with source.connect() as conn:
        migrate(conn)
        conn.execute("insert into core.orgs (slug, name) values ('acme', 'Acme')")
    (work_dir / "spectral.toml").write_text(
        f'[environments.app]\nprovider = "local"\ndsn = "{source.conninfo()}"\n'
        f'schemas = ["core", "worlds", "platform"]\n')
    return work_dir, source.conninfo()


def exit_target(make_cluster: ClusterFactory, bins: PgBinaries | None = None
                ) -> tuple[Cluster, str]:
    """An exit's target: a database `app` owned by role `app` (LOGIN CREATEROLE, not a
    superuser), and its DSN as that role."""
    c = make_cluster(bins)
    with c.connect() as conn:
        conn.execute("create role app login createrole nosuperuser nobypassrls")
        conn.execute("create database app owner app")
    return c, c.conninfo().replace("user=postgres", "user=app").replace("dbname=postgres",
                                                                        "dbname=app")
