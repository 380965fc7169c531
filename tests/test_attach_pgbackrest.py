"""A team's own pgBackRest stanza, attached with the issue's exact keys (provider =
"pgbackrest", attach = true): its backups listed, restores to every kind of target row by row,
a drill anchored to the live server that PASSes, the commands that would write refused (exit
2), and the read-only guarantee: the repository's bytes, the team's configuration file and the
live server's pg_settings unchanged around every command (issue 30)."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attach_world import STANZA, TeamStanza, team_stanza
from conftest import SYSTEM_PG15, _processes_under, spectral
from spectral.pg.binaries import find_binaries
from spectral.pg.conn import connect
from spectral.providers.pgbackrest.attach import repositories_in

needs_team = pytest.mark.skipif(
    shutil.which("pgbackrest") is None or not (SYSTEM_PG15 / "postgres").exists(),
    reason="needs pgbackrest and Debian's PostgreSQL 15 (python3 dev.py test installs both)")


def test_repositories_a_configuration_names() -> None:
    assert repositories_in("[global]\nrepo1-path=/a\n") == 1
    assert repositories_in("[global]\nrepo1-path=/a\nrepo3-type=s3\n[x]\npg1-path=/d\n") == 3
    assert repositories_in("[x]\npg1-path=/d\n") == 1


def toml_for(team: TeamStanza, pg_bin_dir: Path = SYSTEM_PG15) -> str:
    return ('default_environment = "team"\n[environments.team]\nprovider = "pgbackrest"\n'
            f'dsn = "{team.dsn}"\npg_bin_dir = "{pg_bin_dir}"\nposture = "pitr"\n'
            'schemas = ["app"]\nload_bearing_tables = ["app.ledger"]\n'
            '[environments.team.pgbackrest]\nattach = true\n'
            f'stanza = "{STANZA}"\nconfig = "{team.conf}"\n')


@pytest.fixture
def team(work_dir: Path) -> Iterator[TeamStanza]:
    with team_stanza(work_dir, find_binaries(SYSTEM_PG15)) as t:
        (work_dir / "spectral.toml").write_text(toml_for(t))
        try:
            yield t
        finally:
            spectral("dr", "teardown", "--all", cwd=work_dir)
    assert _processes_under(work_dir) == []


class ReadOnly:
    """Runs spectral's commands and checks, around each, that nothing of the team's changed."""

    def __init__(self, team: Any, cwd: Path, grows_in: str = f"archive/{STANZA}/") -> None:
        self.team, self.cwd, self.grows_in = team, cwd, grows_in

    def run(self, *args: str, expect: int = 0, archive_may_grow: bool = False) -> Any:
        archiver_idle(self.team.cluster.data_dir)
        repo, settings, conf = self.team.untouched()
        res = spectral(*args, cwd=self.cwd)
        assert res.returncode == expect, (args, res.stdout, res.stderr)
        archiver_idle(self.team.cluster.data_dir)
        after_repo, after_settings, after_conf = self.team.untouched()
        assert (after_settings, after_conf) == (settings, conf), args
        if archive_may_grow:     # the team's archive_command, after spectral's WAL switch
            assert {k: after_repo[k] for k in repo} == repo, args
            grown = set(after_repo) - set(repo)
            assert all(k.startswith(self.grows_in) for k in grown), (args, grown)
        else:
            assert after_repo == repo, args
        if "--json" in args and res.stdout.strip():
            return json.loads(res.stdout)
        return res.stderr if expect else res.stdout


def archiver_idle(data: Path, timeout: float = 60) -> None:
    """Until the team's archiver has nothing left to archive: a file its archive_command is
    still writing is the team's own write, not spectral's (found in CI: a hash taken while
    gzip was writing a segment)."""
    status = data / "pg_wal" / "archive_status"
    deadline = time.monotonic() + timeout
    while any(status.glob("*.ready")):
        assert time.monotonic() < deadline, "the team's archiver did not catch up"
        time.sleep(0.1)


def ids(inst: dict[str, Any]) -> list[int]:
    with connect(inst["dsn"]) as conn:
        return [r[0] for r in conn.execute("select id from app.ledger order by id")]


@pytest.mark.slow
@pytest.mark.server
@needs_team
def test_an_attached_stanza_restores_drills_and_never_writes(team: TeamStanza,
                                                             work_dir: Path) -> None:
    ro = ReadOnly(team, work_dir)
    a_xid, a_time = team.commit(101)
    time.sleep(0.3)
    team.sql("select pg_create_restore_point('before-b')")
    b_xid, _ = team.commit(102)
    team.archived_now()

    listed = ro.run("dr", "backups", "--json")
    assert len(listed["backups"]) == 1 and listed["window"]["gaps"] == [], listed
    for args, want in ((["--target-xid", str(a_xid)], 101),
                       (["--target-xid", str(b_xid), "--exclusive"], 101),
                       (["--target-time", a_time.isoformat()], 101),
                       (["--target-name", "before-b"], 101),
                       (["--latest"], 102)):
        inst = ro.run("dr", "restore", *args, "--json")
        assert ids(inst) == list(range(1, want + 1)), args
        ro.run("dr", "teardown", inst["id"])

    # the drill: the snapshot read on the live server, the copy restored exactly there. The
    # role may not switch WAL: spectral waits for the team's archive_timeout; then, with
    # EXECUTE on pg_switch_wal granted, it switches
    team.sql("alter system set archive_timeout = '2s'")
    team.sql("select pg_reload_conf()")
    team.commit(103)
    drill = ro.run("dr", "drill", "functional", "--json", archive_may_grow=True)
    assert drill["outcome"] == "pass", drill
    team.sql("alter system reset archive_timeout")
    team.sql("select pg_reload_conf()")
    team.sql("grant execute on function pg_switch_wal() to drill")
    team.commit(104)
    drill = ro.run("dr", "drill", "functional", "--json", archive_may_grow=True)
    assert drill["outcome"] == "pass", drill
    assert ro.run("dr", "instances", "--json") == []

    # the accident, found in the team's archive, and the copy from just before it
    team.sql("delete from app.ledger where id <= 50")
    found = ro.run("--json", "dr", "find-damage", "--table", "app.ledger", "--op", "delete",
                   archive_may_grow=True)
    assert len(found) == 1 and found[0]["rows"] == 50, found
    inst = ro.run("dr", "restore", *found[0]["target"].split(), "--json")
    assert ids(inst) == list(range(1, 105))
    ro.run("dr", "teardown", inst["id"])

    # what would write is refused in one line, exit 2, before anything runs
    for args in (["dr", "backup"], ["dr", "expire", "--keep", "1", "--yes"],
                 ["dr", "restore", "--in-place", "--latest", "--yes"],
                 ["dr", "wal", "stream"], ["local", "up"]):
        err = ro.run(*args, expect=2)
        assert len(err.strip().splitlines()) <= 2, err


@pytest.mark.server
@needs_team
def test_wrong_keys_and_majors_are_one_line(team: TeamStanza, work_dir: Path,
                                            bins: Any) -> None:
    ro = ReadOnly(team, work_dir)
    toml = work_dir / "spectral.toml"
    toml.write_text(toml_for(team).replace(f'stanza = "{STANZA}"', 'stanza = "other"'))
    err = ro.run("dr", "backups", expect=2)
    assert "stanza 'other'" in err, err
    toml.write_text(toml_for(team).replace(str(team.conf), "/nonexistent/pgbackrest.conf"))
    err = ro.run("dr", "backups", expect=2)
    assert "/nonexistent/pgbackrest.conf" in err, err
    ro.run("dr", "teardown", "--all")      # reads nothing of the repository: it still works
    toml.write_text(toml_for(team, bins.bin_dir))
    team.archived_now()
    err = ro.run("dr", "restore", "--latest", expect=2)
    assert "PostgreSQL 18" in err and "PostgreSQL 15" in err, err
