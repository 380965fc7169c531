"""A plain archive a team already has (provider = "archive", issue 30): pg_basebackup folders
in plain and tar formats (gzip and zstd, with and without a backup_manifest) and a WAL folder
its archive_command fills (plain or gzip-compressed segments). Restores to every kind of
target from each backup, a drill anchored to the live server that PASSes, damage named, what
would write refused, and the team's folders and live pg_settings unchanged around every
command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from attach_world import TeamArchive, team_archive
from conftest import _processes_under, spectral
from spectral.pg.binaries import PgBinaries
from spectral.pg.conn import connect
from spectral.pg.osuser import server_identity
from spectral.providers.archive.restore import archive_restore_command
from spectral.runner import run
from test_attach_pgbackrest import ReadOnly, ids


def test_the_restore_command_tries_the_plain_segment_then_each_compression() -> None:
    cmd = archive_restore_command(Path("/srv/wal"), 64 << 20)
    assert "= 67108864" in cmd          # a whole segment of the lineage's size
    assert cmd.startswith('{ test -f /srv/wal/%f && {')
    for suffix, program in ((".gz", "gzip"), (".lz4", "lz4"), (".zst", "zstd")):
        assert f'{program} -dc /srv/wal/%f{suffix} > "%p"' in cmd


def toml_for(team: TeamArchive) -> str:
    return ('default_environment = "files"\n[environments.files]\nprovider = "archive"\n'
            f'dsn = "{team.dsn}"\npg_bin_dir = "{team.cluster.bins.bin_dir}"\n'
            'posture = "pitr"\nschemas = ["app"]\nload_bearing_tables = ["app.ledger"]\n'
            f'[environments.files.archive]\nbase_backups = "{team.base}"\nwal = "{team.wal}"\n')


@pytest.fixture(params=[None, "gz"], ids=["plain-wal", "gzip-wal"])
def team(request: pytest.FixtureRequest, work_dir: Path,
         bins: PgBinaries) -> Iterator[TeamArchive]:
    with team_archive(work_dir, bins, request.param) as t:
        (work_dir / "spectral.toml").write_text(toml_for(t))
        try:
            yield t
        finally:
            spectral("dr", "teardown", "--all", cwd=work_dir)
    assert _processes_under(work_dir) == []


@pytest.mark.slow
@pytest.mark.server
def test_a_plain_archive_restores_drills_and_never_writes(team: TeamArchive,
                                                          work_dir: Path) -> None:
    ro = ReadOnly(team, work_dir, grows_in="wal/")
    team.basebackup("plain")                                   # with a backup_manifest
    a_xid, a_time = team.commit(101)
    team.basebackup("tar-gz", "-Ft", "--compress=gzip")
    b_xid, _ = team.commit(102)
    # this build's pg_basebackup compresses with gzip only: zstd by the team, afterwards
    for tar in team.basebackup("tar-zst", "-Ft", "--no-manifest").glob("*.tar"):
        run(["zstd", "-q", "--rm", str(tar)], timeout=120, run_as=server_identity())
    team.commit(103)
    team.archived_now()

    listed = ro.run("dr", "backups", "--json")
    assert [b["id"] for b in listed["backups"]] == ["plain", "tar-gz", "tar-zst"], listed
    assert listed["window"]["gaps"] == [], listed
    for args, want, source in ((["--target-xid", str(a_xid)], 101, "plain"),
                               (["--target-xid", str(b_xid), "--exclusive"], 101, "tar-gz"),
                               # tar-gz is consistent at a's commit: it reaches a's time
                               (["--target-time", a_time.isoformat()], 101, "tar-gz"),
                               (["--target-xid", str(b_xid)], 102, "tar-gz"),
                               (["--latest"], 103, "tar-zst")):
        inst = ro.run("dr", "restore", *args, "--json")
        assert ids(inst) == list(range(1, want + 1)), json.dumps([args, inst, listed], default=str)
        assert inst["backup_id"] == source, (args, inst)
        ro.run("dr", "teardown", inst["id"])

    team.sql("alter system set archive_timeout = '2s'")
    team.sql("select pg_reload_conf()")
    team.commit(104)
    drill = ro.run("dr", "drill", "functional", "--json", archive_may_grow=True)
    assert drill["outcome"] == "pass", drill
    assert ro.run("dr", "instances", "--json") == []
    for args in (["dr", "backup"], ["dr", "restore", "--in-place", "--latest", "--yes"],
                 ["dr", "wal", "stream"], ["dr", "expire", "--keep", "1", "--yes"]):
        ro.run(*args, expect=2)


@pytest.mark.server
def test_damage_in_the_teams_archive_is_named(team: TeamArchive, work_dir: Path) -> None:
    ro = ReadOnly(team, work_dir, grows_in="wal/")
    backup = team.basebackup("plain")
    team.commit(101)
    gone = team.archived_now()
    team.commit(102)
    team.archived_now()
    victim = next(p for p in (backup / "base").rglob("*") if p.is_file()
                  and p.stat().st_size > 8192)
    data = bytearray(victim.read_bytes())
    data[4096] ^= 0xFF
    victim.write_bytes(bytes(data))
    err = ro.run("dr", "restore", "--latest", expect=1)   # proven damaged: named, exit 1
    assert "backup plain is damaged" in err and "checksum mismatch for file" in err, err
    victim.write_bytes(bytes(data[:4096]) + bytes([data[4096] ^ 0xFF]) + bytes(data[4097:]))
    suffix = f".{team.compress}" if team.compress else ""
    (team.wal / f"{gone}{suffix}").unlink()
    window = ro.run("dr", "backups", "--json")["window"]
    assert [g["missing_from"] for g in window["gaps"]] == [gone], json.dumps(window)
    err = ro.run("dr", "restore", "--latest", expect=3)
    assert gone in err, err


@pytest.mark.server
def test_an_archive_without_backups_says_so_without_pointing_at_dr_backup(
        team: TeamArchive, work_dir: Path) -> None:
    """Session 11's adversary round: "no backups yet (spectral dr backup)" sent an attached
    environment's user to a command it refuses."""
    out = ReadOnly(team, work_dir, grows_in="wal/").run("dr", "backups")
    assert "no backups yet" in out and "holds none" in out and "dr backup)" not in out, out


def test_a_backups_stop_time_is_never_early(tmp_path: Path) -> None:
    """Found in CI (session 11, 2 runs in 3): the history file's STOP TIME is whole seconds,
    rounded down, and the window takes a backup's stop time as the latest its consistency point
    can be; a backup taken after a time target in the same second was chosen for it, and the
    copy held a commit made after the target, exit 0."""
    from datetime import UTC, datetime

    from spectral.providers.archive.backups import BaseBackup, _stopped_by

    b = BaseBackup("b", tmp_path, None, None)
    assert _stopped_by(b, {"STOP TIME": "2026-12-05 18:49:07 UTC"}) == datetime(
        2026, 12, 5, 18, 49, 8, tzinfo=UTC)
    (tmp_path / "backup_manifest").write_text("{}")
    assert _stopped_by(b, {}) > datetime.fromtimestamp(
        (tmp_path / "backup_manifest").stat().st_mtime, UTC)


@pytest.mark.server
def test_a_team_whose_superuser_is_not_postgres_drills(work_dir: Path, bins: PgBinaries) -> None:
    """Session 11's note: copies were read as `postgres`, which a cluster made with
    `initdb -U admin` does not have (and a team may drop the `postgres` database): the copy is
    read as the team's bootstrap role, asked of the live server."""
    with team_archive(work_dir, bins, None, superuser="admin") as team:
        (work_dir / "spectral.toml").write_text(toml_for(team))
        try:
            with connect(team.cluster.conninfo("app")) as conn:
                conn.execute("drop database postgres")
            ro = ReadOnly(team, work_dir, grows_in="wal/")
            team.basebackup("plain")
            xid, _ = team.commit(101)
            team.commit(102)
            team.archived_now()
            inst = ro.run("dr", "restore", "--target-xid", str(xid), "--json")
            assert ids(inst) == list(range(1, 102)) and "user=admin" in inst["dsn"], inst
            ro.run("dr", "teardown", inst["id"])
            team.sql("alter system set archive_timeout = '2s'")
            team.sql("select pg_reload_conf()")
            drill = ro.run("dr", "drill", "functional", "--json", archive_may_grow=True)
            assert drill["outcome"] == "pass", drill
        finally:
            spectral("dr", "teardown", "--all", cwd=work_dir)
    assert _processes_under(work_dir) == []
