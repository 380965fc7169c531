"""The command line as a user runs it: real processes, real clusters, exit codes, one-line errors,
and nothing left running after a command that started a server for itself."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import pytest

from conftest import _processes_under, spectral, table_digests
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.conn import connect
from spectral.pg.osuser import make_owned_dir


def no_server_left(path: Path) -> None:
    assert _processes_under(path) == []


def one_error_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("spectral: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.server
def test_local_lifecycle_and_status_json(work_dir: Path) -> None:
    res = spectral("local", "status", "--json", cwd=work_dir)
    assert res.returncode == 0 and json.loads(res.stdout)["exists"] is False
    res = spectral("local", "up", "--json", cwd=work_dir)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["created"] is True
    try:
        info = json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)
        assert info["running"] is True and info["server_version"].startswith("18.")
        assert info["size_bytes"] > 1_000_000
        with connect(info["dsn"]) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        res = spectral("local", "psql", "--", "-tAc", "select 40 + 2", cwd=work_dir)
        assert res.returncode == 0 and res.stdout.strip() == "42"
        with connect(info["dsn"]) as conn:
            conn.execute("create database other")
        res = spectral("local", "psql", "--", "-d", "other", "-tAc", "select current_database()",
                       cwd=work_dir)                 # the user's -d is theirs, host stays ours
        assert res.returncode == 0 and res.stdout.strip() == "other", res.stderr
    finally:
        assert spectral("local", "down", cwd=work_dir).returncode == 0
    no_server_left(work_dir)
    info = json.loads(spectral("--json", "local", "status", cwd=work_dir).stdout)
    assert info["running"] is False and info["pid"] is None


@pytest.mark.server
def test_demo_runs_a_drill_and_stops_its_cluster(work_dir: Path) -> None:
    res = spectral("demo", "--json", cwd=work_dir)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["outcome"] == "pass" and out["type"] == "functional"
    counts = next(c for c in out["checks"] if c["name"].startswith("row counts"))
    assert "worlds.returns: 4000 rows, match" in counts["evidence"]
    assert out["rto_seconds"] < 60
    no_server_left(work_dir)
    res = spectral("demo", cwd=work_dir)   # human output; the second run reuses the data
    assert res.returncode == 0 and "PASS" in res.stdout
    no_server_left(work_dir)


@pytest.mark.server
def test_reseed_twice_gives_byte_identical_tables(work_dir: Path) -> None:
    assert spectral("local", "up", cwd=work_dir).returncode == 0
    try:
        dsn = json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)["dsn"]
        digests = []
        for _ in range(2):
            res = spectral("db", "reseed", "--scale", "1", "--yes", cwd=work_dir)
            assert res.returncode == 0, res.stderr
            digests.append(table_digests(dsn))
        assert digests[0] == digests[1]
    finally:
        spectral("local", "down", cwd=work_dir)
    no_server_left(work_dir)


def _partner_corpus(dsn: str) -> None:
    with connect(dsn) as conn:
        conn.execute("insert into platform.corpora (slug, title, owner, partner_id, org_id) "
                     "values ('acme-rules', 'Acme rules', 'partner', 1, 1)")


@pytest.mark.server
def test_reseed_refuses_partner_data_and_unconfirmed_resets(work_dir: Path) -> None:
    assert spectral("demo", cwd=work_dir).returncode == 0
    assert spectral("local", "up", cwd=work_dir).returncode == 0
    try:
        dsn = json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)["dsn"]
        before = table_digests(dsn)
        res = spectral("db", "reseed", cwd=work_dir)   # no terminal, no --yes
        assert res.returncode == 2
        assert "not confirmed" in one_error_line(res.stderr)
        assert table_digests(dsn) == before
        _partner_corpus(dsn)
        before = table_digests(dsn)
        res = spectral("db", "reseed", "--yes", cwd=work_dir)
        assert res.returncode == 2
        assert "partner-owned data is not regenerable: acme-rules" in one_error_line(res.stderr)
        assert table_digests(dsn) == before
        res = spectral("db", "reseed", "--yes", "--force", cwd=work_dir)
        assert res.returncode == 0, res.stderr
        with connect(dsn) as conn:
            assert conn.execute("select count(*) from platform.corpora where owner = 'partner'"
                                ).fetchone() == (0,)
    finally:
        spectral("local", "down", cwd=work_dir)
    no_server_left(work_dir)


@pytest.mark.server
def test_reseed_refused_on_pro_posture(work_dir: Path) -> None:
    (work_dir / "spectral.toml").write_text('[environments.local]\nprovider = "local"\n'
                                            'posture = "pro"\n')
    res = spectral("db", "reseed", "--yes", cwd=work_dir)
    assert res.returncode == 2
    assert "posture tier is pro: recovery is restore, not re-seed" in one_error_line(res.stderr)
    no_server_left(work_dir)


def test_init_writes_a_starter_and_never_overwrites(work_dir: Path) -> None:
    assert spectral("init", cwd=work_dir).returncode == 0
    text = (work_dir / "spectral.toml").read_text()
    assert "[environments.production]" in text and "op://" in text
    res = spectral("init", cwd=work_dir)
    assert res.returncode == 2 and "already exists" in one_error_line(res.stderr)
    res = spectral("--env", "production", "db", "migrate", cwd=work_dir)
    assert res.returncode == 2   # op:// reference with no 1Password CLI, or unreachable
    one_error_line(res.stderr)


@pytest.mark.parametrize(("toml", "args", "expected"), [
    (None, ["--env", "nope", "local", "status"], "unknown environment 'nope'"),
    ("x = \n", ["local", "status"], "not valid TOML"),
    ('[environments.local]\nprovider = "local"\nposture = "gold"\n', ["local", "status"],
     "environments.local.posture"),
    ('[environments.e]\nprovider = "local"\ndsn = "env:SPECTRAL_NO_SUCH_VAR"\n',
     ["--env", "e", "db", "migrate"], "environment variable SPECTRAL_NO_SUCH_VAR is not set"),
    ('[environments.e]\nprovider = "local"\ndsn = "file:/nonexistent/dsn"\n',
     ["--env", "e", "db", "migrate"], "cannot read /nonexistent/dsn"),
    ('[environments.e]\nprovider = "local"\ndsn = "env:SPECTRAL_TEST_DSN_UNREACHABLE"\n',
     ["--env", "e", "db", "migrate"], "cannot connect to database"),
    ('[environments.e]\nprovider = "local"\ndsn = "host=127.0.0.1 user=x"\n',
     ["--env", "e", "local", "up"], "is not a local environment run by spectral"),
])
def test_bad_input_is_one_line_and_exit_2(work_dir: Path, toml: str | None, args: list[str],
                                          expected: str) -> None:
    if toml is not None:
        (work_dir / "spectral.toml").write_text(toml)
    secret = "sup3r-secret-pw"
    env = {"SPECTRAL_TEST_DSN_UNREACHABLE":
           f"postgresql://app:{secret}@127.0.0.1:{free_port()}/app?connect_timeout=2"}
    res = spectral(*args, cwd=work_dir, env=env)
    assert res.returncode == 2, res.stderr
    assert expected in one_error_line(res.stderr)
    assert secret not in res.stderr + res.stdout
    no_server_left(work_dir)


@pytest.mark.server
def test_a_port_taken_meanwhile_moves_the_environment_and_keeps_its_data(
        work_dir: Path) -> None:
    """The port spectral chose for the environment, taken by another program while it was
    down: the next `local up` starts on another port (issue 27's port race) and records it;
    the data directory is the same one."""
    assert spectral("local", "up", cwd=work_dir).returncode == 0
    info = json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)
    assert spectral("local", "down", cwd=work_dir).returncode == 0
    before = sorted(p.name for p in Path(info["data_dir"]).iterdir())
    with socket.socket() as s:
        s.bind(("127.0.0.1", info["port"]))
        s.listen()
        res = spectral("local", "up", cwd=work_dir)
        moved = json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)
    assert res.returncode == 0, res.stderr
    assert moved["port"] != info["port"] and moved["data_dir"] == info["data_dir"]
    assert spectral("local", "down", cwd=work_dir).returncode == 0
    assert sorted(p.name for p in Path(info["data_dir"]).iterdir()) == before
    no_server_left(work_dir)


@pytest.mark.server
def test_data_directory_of_another_cluster_is_refused(work_dir: Path, bins: PgBinaries) -> None:
    # a cluster spectral did not create, where the local environment's cluster would live
    cdir = make_owned_dir(work_dir / ".spectral" / "local" / "cluster", 0o755)
    foreign = Cluster(bins, cdir / "data", socket_dir_for(cdir / "run"), free_port(),
                      cdir / "log" / "pg.log")
    foreign.initdb()
    res = spectral("local", "up", cwd=work_dir)
    assert res.returncode == 2 and "did not create" in one_error_line(res.stderr)
    # the environment's own metadata, but the data directory swapped for another cluster
    shutil.rmtree(work_dir / ".spectral")
    assert spectral("local", "up", cwd=work_dir).returncode == 0
    assert spectral("local", "down", cwd=work_dir).returncode == 0
    data = work_dir / ".spectral" / "local" / "cluster" / "data"
    shutil.rmtree(data)
    other = Cluster(bins, data, socket_dir_for(cdir / "run"), free_port(),
                    cdir / "log" / "pg.log")
    other.initdb()
    marker = sorted(p.name for p in data.iterdir())
    res = spectral("local", "up", cwd=work_dir)
    assert res.returncode == 2 and "belongs to another cluster" in one_error_line(res.stderr)
    assert sorted(p.name for p in data.iterdir()) == marker
    no_server_left(work_dir)


def test_json_flag_works_before_and_after_the_command(work_dir: Path) -> None:
    a = spectral("--json", "local", "status", cwd=work_dir)
    b = spectral("local", "status", "--json", cwd=work_dir)
    assert json.loads(a.stdout) == json.loads(b.stdout)


def test_usage_errors_exit_2(work_dir: Path) -> None:
    res = spectral("db", "seed", "--scale", "0", cwd=work_dir)
    assert res.returncode == 2
    res = spectral("no-such-command", cwd=work_dir)
    assert res.returncode == 2


@pytest.mark.server
def test_interrupted_seed_rolls_back_and_stops_its_cluster(work_dir: Path) -> None:
    import signal
    import subprocess
    import time

    from conftest import SPECTRAL

    assert spectral("db", "migrate", cwd=work_dir).returncode == 0
    proc = subprocess.Popen([SPECTRAL, "db", "seed", "--scale", "60"], cwd=work_dir,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3.0)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    no_server_left(work_dir)
    assert spectral("local", "up", cwd=work_dir).returncode == 0
    try:
        dsn = json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)["dsn"]
        with connect(dsn) as conn:   # the seed's transactions were rolled back
            for table in ("worlds.line_items", "worlds.returns", "core.orgs"):
                assert conn.execute(f"select count(*) from {table}").fetchone() == (0,)
            # and the indexes dropped for the load were rebuilt
            assert conn.execute("select to_regclass('worlds.line_items_form_idx')"
                                ).fetchone() == ("worlds.line_items_form_idx",)
    finally:
        spectral("local", "down", cwd=work_dir)
    no_server_left(work_dir)
