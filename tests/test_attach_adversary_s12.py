"""Session 12's adversarial round on the attached backends (issue 30), kept as regression
tests: each one failed before its fix.

- A time target after the last transaction the team's archive holds was restored from the
  archive as it stood: the segment the live server was writing (not archived yet: full or
  archive_timeout) held commits made before the target, and the copy lacked them, exit 0.
  A transaction or restore point there was "not in the recoverable window", exit 2.
- A history file of a timeline the live server is not on (a promoted copy archiving into the
  team's folder): every backup looked abandoned, `dr backups` said "no recoverable window"
  (exit 0), a restore pointed at `dr backup`, a drill waited two minutes and blamed the
  team's archive_command. Now named in one line, exit 3.
- A file in the team's WAL folder whose name merely ends in `.history`: "internal error:
  ValueError", every command.
- One backup folder with a damaged backup_label stopped every command ("internal error:
  KeyError" or "not a WAL location", naming no backup): no other backup could be restored.
  It is listed as failed, saying why.
- A dsn and an archive of two different clusters (production's server, staging's archive):
  the drill compared unrelated data, FAIL exit 1 blaming the backups (or PASS when the data
  agreed). The drill now names the two database systems.
- A drill with a pg_bin_dir of another major than the backups' took the snapshot and
  recorded a could-not-verify drill (exit 3); it is refused before anything runs (exit 2),
  as docs/attach.md says and as dr backups and dr restore already were."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from attach_world import TeamArchive, team_archive
from conftest import SYSTEM_PG15, _processes_under, spectral
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.conn import connect
from test_attach_archive import toml_for
from test_attach_pgbackrest import ReadOnly, ids


@pytest.fixture
def team(work_dir: Path, bins: PgBinaries) -> Iterator[TeamArchive]:
    with team_archive(work_dir, bins, None) as t:
        (work_dir / "spectral.toml").write_text(toml_for(t))
        try:
            yield t
        finally:
            spectral("dr", "teardown", "--all", cwd=work_dir)
    assert _processes_under(work_dir) == []


@pytest.mark.server
def test_a_time_after_the_archives_last_commit_is_restored_with_the_live_servers_wal(
        team: TeamArchive, work_dir: Path) -> None:
    """Before: row 101, committed before the target into the segment being written, was not
    in the copy (ids 1..100), exit 0. Now the archive is made to hold the live server's WAL
    first; with the live server down, such a target is unknown (exit 3) and --latest still
    restores the archive's end."""
    team.sql("grant execute on function pg_switch_wal() to drill")
    team.basebackup("b")
    team.archived_now()
    team.commit(101)                    # only in the live server's pg_wal
    time.sleep(1.1)
    target = team.sql("select now()")[0][0]
    ro = ReadOnly(team, work_dir, grows_in="wal/")
    inst = ro.run("dr", "restore", "--target-time", target.isoformat(), "--json",
                  archive_may_grow=True)
    assert ids(inst) == list(range(1, 102)), inst

    team.sql("select pg_create_restore_point('just-made')")
    inst = ro.run("dr", "restore", "--target-name", "just-made", "--json",
                  archive_may_grow=True)
    assert ids(inst) == list(range(1, 102)), inst
    xid, _ = team.commit(102)
    inst = ro.run("dr", "restore", "--target-xid", str(xid), "--json", archive_may_grow=True)
    assert ids(inst) == list(range(1, 103)), inst

    team.commit(103)
    time.sleep(1.1)
    later = team.sql("select now()")[0][0]
    team.cluster.stop(timeout=30)
    try:
        res = spectral("dr", "restore", "--target-time", later.isoformat(), cwd=work_dir)
        assert res.returncode == 3, (res.stdout, res.stderr)
        assert "live server cannot be reached" in res.stderr and "--latest" in res.stderr
        res = spectral("dr", "restore", "--latest", "--json", cwd=work_dir)
        assert res.returncode == 0, res.stderr
    finally:
        team.cluster.start()


@pytest.mark.server
def test_a_history_file_of_a_timeline_the_live_server_is_not_on_is_named(
        team: TeamArchive, work_dir: Path) -> None:
    team.basebackup("b")
    team.commit(101)
    team.archived_now()
    stray = team.wal / "00000007.history"
    stray.write_text("1\t0/3000000\tno recovery target specified\n")
    ro = ReadOnly(team, work_dir, grows_in="wal/")
    for args in (["dr", "backups"], ["dr", "restore", "--latest"]):
        err = ro.run(*args, expect=3)
        assert "timeline 7" in err and "live server is on timeline 1" in err, (args, err)
        assert "dr backup" not in err, err


def test_a_file_that_merely_ends_in_history_is_no_timeline(tmp_path: Path) -> None:
    from spectral.providers.archive.repo import ArchiveRepository

    wal = tmp_path / "wal"
    wal.mkdir()
    for name in ("it's notes.history", "00000002.history"):
        (wal / name).write_text("1\t0/3000000\tno recovery target specified\n")
    repo = ArchiveRepository(tmp_path / "state", tmp_path / "base", wal)
    assert repo.history_timelines() == [2]


def test_history_file_names() -> None:
    from spectral.providers.local.wal import history_timeline

    assert history_timeline("0000000A.history") == 10
    for name in ("notes.history", "adv-00000007.history", "0000000A.history.bak",
                 "0000000a.history", "000000010000000000000003"):
        assert history_timeline(name) is None, name


@pytest.mark.parametrize("text, why", [
    ("garbage\n", "no 'START WAL LOCATION' line"),
    ("START WAL LOCATION: 0/ZZ (file 0000000100000000000000ZZ)\nSTART TIME: x\n",
     "not a WAL location"),
    ("START WAL LOCATION: 0/3000028 (file 000000010000000000000003)\nSTART TIME: soon\n",
     "does not match format"),
])
def test_a_backup_whose_label_cannot_be_read_is_listed_as_failed(text: str, why: str) -> None:
    from spectral.providers.archive.backups import backup_entry
    from spectral.providers.base import Verification

    b = backup_entry("damaged", text, "15", {}, None, None, has_manifest=False, size=1)
    assert b.verification is Verification.FAILED
    assert why in b.verification_detail and "backup_label" in b.verification_detail


@pytest.mark.server
def test_a_drill_of_another_clusters_archive_names_the_two_systems(
        team: TeamArchive, work_dir: Path, bins: PgBinaries,
        monkeypatch: pytest.MonkeyPatch) -> None:
    team.basebackup("b")
    for row in range(101, 106):           # the team's archive runs to a few segments on
        team.commit(row)
        team.archived_now()
    other = Cluster(bins, work_dir / "other" / "data", socket_dir_for(work_dir / "other-run"),
                    free_port(), work_dir / "other" / "postgres.log", port_chosen=True)
    monkeypatch.delenv("SPECTRAL_INITDB_TEMPLATES", raising=False)   # a system of its own
    other.initdb(conf={"wal_level": "replica"})
    other.start()
    try:
        with connect(other.conninfo()) as conn:
            conn.execute("create database app")
        with connect(other.conninfo("app")) as conn:
            conn.execute("create schema app; create table app.ledger (id int primary key, "
                         "note text); insert into app.ledger select g, 'x' from "
                         "generate_series(1, 105) g; create role drill login; "
                         "grant pg_read_all_data, pg_monitor to drill")
            for _ in range(2):            # its LSN inside the team's window
                conn.execute("select pg_switch_wal()")
                conn.execute("update app.ledger set note = note")
        dsn = (f"host={other.socket_dir} port={other.port} user=drill dbname=app")
        (work_dir / "spectral.toml").write_text(toml_for(team).replace(team.dsn, dsn))
        res = spectral("dr", "drill", "functional", "--json", cwd=work_dir)
        assert res.returncode in (2, 3), (res.stdout, res.stderr)
        assert "two different clusters" in res.stdout + res.stderr, (res.stdout, res.stderr)
    finally:
        other.stop(timeout=30)


@pytest.mark.server
@pytest.mark.skipif(not (SYSTEM_PG15 / "pg_waldump").exists(), reason="needs PostgreSQL 15")
def test_a_drill_with_a_pg_bin_dir_of_another_major_is_refused_before_it_runs(
        team: TeamArchive, work_dir: Path) -> None:
    team.basebackup("b")
    team.archived_now()
    (work_dir / "spectral.toml").write_text(
        toml_for(team).replace(str(team.cluster.bins.bin_dir), str(SYSTEM_PG15)))
    ro = ReadOnly(team, work_dir, grows_in="wal/")
    err = ro.run("dr", "drill", "functional", expect=2)
    assert "pg_bin_dir holds PostgreSQL 15" in err, err
    assert "no ledger entries" in ro.run("dr", "log")       # nothing ran, nothing recorded
