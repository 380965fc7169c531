"""The Supabase provider against the emulator backed by a real cluster."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import _processes_under, spectral
from spectral.localenv import LocalEnvironment
from spectral.pg.binaries import PgBinaries
from spectral.pg.conn import connect
from spectral.providers.local.provider import LocalProvider
from spectral.providers.supabase.client import ApiError, ManagementClient
from supabase_emulator import Emulator, Project, Server

TOKEN = "sbp_emulatortoken0123456789abcdef"


@pytest.fixture
def project(work_dir: Path, bins: PgBinaries) -> Iterator[tuple[Path, Emulator, str, Server]]:
    local = LocalEnvironment("emu", work_dir / "emu-state", bins)
    local.up()
    provider = LocalProvider(local)
    dsn = local.cluster().conninfo()
    with connect(dsn) as conn:
        conn.execute("create schema core")
        conn.execute("create table core.notes (id int primary key, note text)")
        conn.execute("insert into core.notes values (1, 'base')")
    provider.backup()
    emulator = Emulator(TOKEN, {"emu0": Project("emu0", provider)})
    with Server(emulator) as server:
        (work_dir / "spectral.toml").write_text(
            f'[environments.production]\nprovider = "supabase"\nproject_ref = "emu0"\n'
            f'dsn = "{dsn}"\naccess_token = "env:SUPABASE_TEST_TOKEN"\n'
            f'api_url = "{server.url}"\nschemas = ["core"]\nload_bearing_tables = '
            f'["core.notes"]\n')
        try:
            yield work_dir, emulator, dsn, server
        finally:
            local.down()
    assert _processes_under(work_dir) == []


def cli(work: Path, *args: str) -> tuple[int, str, str]:
    res = spectral("--env", "production", *args, cwd=work,
                   env={"SUPABASE_TEST_TOKEN": TOKEN})
    assert TOKEN not in res.stdout + res.stderr, "the token leaked into the output"
    return res.returncode, res.stdout, res.stderr


def test_backups_and_window(project: tuple[Path, Emulator, str, Server]) -> None:
    work, _emu, _dsn, _server = project
    code, out, err = cli(work, "dr", "backups", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["pitr_enabled"] and doc["backups"][0]["physical"] is True
    assert doc["window"]["earliest_time"] and doc["window"]["latest_time"]


def test_pitr_in_place_really_rewinds(project: tuple[Path, Emulator, str, Server]) -> None:
    work, emu, dsn, _server = project
    with connect(dsn) as conn:
        conn.execute("insert into core.notes values (2, 'first')")
    time.sleep(1.5)
    target = datetime.now(UTC)
    time.sleep(1.5)
    with connect(dsn) as conn:
        conn.execute("insert into core.notes values (3, 'second')")
    code, _out, err = cli(work, "dr", "restore", "--in-place", "--target-time",
                          "2001-01-01T00:00:00Z", "--yes")
    assert code == 2 and "outside the recoverable window" in err
    assert not any(path.endswith("restore-pitr") for _m, path in emu.calls)   # refused first
    code, out, err = cli(work, "dr", "restore", "--in-place", "--target-time",
                         target.isoformat(), "--yes", "--json")
    assert code == 0, err
    assert json.loads(out)["schemas_match_snapshot"] is True
    with connect(dsn) as conn:
        assert conn.execute("select id from core.notes order by id").fetchall() == [(1,), (2,)]
    evidence = "".join(p.read_text(errors="replace") for p in work.rglob("*")
                       if p.is_file() and p.suffix in (".json", ".jsonl", ".toml", ".log"))
    assert TOKEN not in evidence


def test_pitr_not_enabled_gives_the_api_message(
        project: tuple[Path, Emulator, str, Server]) -> None:
    work, emu, _dsn, _server = project
    emu.projects["emu0"].pitr_enabled = False
    code, _out, err = cli(work, "dr", "restore", "--in-place", "--target-time",
                          datetime.now(UTC).isoformat(), "--yes")
    assert code == 3 and "PITR is not enabled for this project." in err


def test_api_message_and_rate_limit(project: tuple[Path, Emulator, str, Server]) -> None:
    _work, emu, _dsn, server = project
    client = ManagementClient(TOKEN, server.url)
    emu.projects["emu0"].pitr_enabled = False
    with pytest.raises(ApiError, match=r"PITR is not enabled for this project\."):
        client.post("/projects/emu0/database/backups/restore-pitr",
                    {"recovery_time_target_unix": 1})
    emu.throttle = 2
    assert client.get("/projects/emu0")["status"] == "ACTIVE_HEALTHY"
    assert client.retries == 2
    bad = ManagementClient("sbp_wrongtoken00000000", server.url)
    with pytest.raises(ApiError) as exc:
        bad.get("/projects/emu0")
    assert exc.value.status == 401 and "sbp_wrong" not in str(exc.value)
