"""A team's Barman Cloud backups (provider = "barman-cloud", issue 30): a PostgreSQL the test
starts itself archiving with barman-cloud-wal-archive into an S3 server (moto, plain HTTP) and
backed up with barman-cloud-backup; its backups listed, restores to latest, xid and time
targets row by row, a drill anchored to the live server that PASSes, what would write refused
(exit 2), a deleted WAL object named as a gap, and the read-only guarantee: every object's key
and ETag and the live pg_settings unchanged around every command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from barman_world import BUCKET, SERVER_NAME, TeamBarman, team_barman
from conftest import _processes_under, spectral
from spectral.pg.binaries import PgBinaries
from spectral.providers.barman.command import list_argv, restore_argv, restore_command
from spectral.providers.barman.repo import backup_from_list, server_version, wal_name
from spectral.providers.barman.restore import tablespace_args
from spectral.providers.barman.settings import BarmanCloudConfig
from spectral.providers.base import Verification
from test_attach_pgbackrest import ReadOnly, ids

CFG = BarmanCloudConfig(destination="s3://bucket/some/prefix", server_name="main",
                        endpoint_url="https://s3.example:9000", access_key_id="env:K",
                        secret_access_key="env:S", bin_dir=Path("/opt/b/bin"))


def test_command_lines_carry_no_secret() -> None:
    common = ["--cloud-provider", "aws-s3", "--endpoint-url", "https://s3.example:9000"]
    assert list_argv(CFG) == ["/opt/b/bin/barman-cloud-backup-list", *common, "--format",
                              "json", "s3://bucket/some/prefix", "main"]
    assert restore_argv(CFG, "20261205T170000", Path("/x/data")) == [
        "/opt/b/bin/barman-cloud-restore", *common, "s3://bucket/some/prefix", "main",
        "20261205T170000", "/x/data"]
    cmd = restore_command(CFG, Path("/state/spool"))
    assert cmd == ("/opt/b/bin/barman-cloud-wal-restore --cloud-provider aws-s3 --endpoint-url "
                   "https://s3.example:9000 --no-partial --spool-dir /state/spool "
                   "s3://bucket/some/prefix main %f %p")


def test_settings_take_keys_only_as_references_and_name_the_prefix() -> None:
    assert CFG.bucket == "bucket" and CFG.prefix == "some/prefix/main/"
    assert BarmanCloudConfig(destination="s3://b-1", server_name="pg").prefix == "pg/"
    for bad, said in (({"access_key_id": "AKIAXXXX", "secret_access_key": "env:S"},
                       "secret reference"),
                      ({"access_key_id": "env:K"}, "go together"),
                      ({"destination": "/srv/backups"}, "s3://bucket/prefix"),
                      ({"server_name": "../x"}, "letters, digits")):
        args = {"destination": "s3://bucket/p", "server_name": "main", **bad}
        with pytest.raises(ValidationError, match=said):
            BarmanCloudConfig(**args)


def test_wal_objects_and_the_catalog_are_read() -> None:
    assert wal_name("p/main/wals/0000000100000000/000000010000000000000003.gz") == \
        "000000010000000000000003"
    assert wal_name("p/main/wals/00000002.history") == "00000002.history"
    assert wal_name("p/main/wals/0000000100000000/000000010000000000000003.00000028.backup"
                    ".gz") is None
    assert server_version(180001) == "18.1" and server_version(90624) == "9.6"
    done = backup_from_list({"backup_id": "20261205T170000", "status": "DONE",
                             "begin_xlog": "0/2000028", "end_xlog": "0/2000120",
                             "begin_time_iso": "2026-12-05T17:00:00.100000+00:00",
                             "end_time_iso": "2026-12-05T17:00:01.200000+00:00",
                             "timeline": 1, "size": 4096, "version": 180001})
    assert (done.start_lsn, done.stop_lsn, done.server_version, done.usable) == \
        ("0/2000028", "0/2000120", "18.1", True)
    failed = backup_from_list({"backup_id": "20261205T180000", "status": "FAILED"})
    assert failed.verification is Verification.FAILED and not failed.usable
    assert tablespace_args([["fast", 16400, "/mnt/ssd"]], Path("/i/r1/data")) == [
        "--tablespace", "fast:/i/r1/data-tablespaces/fast"]


def toml_for(team: TeamBarman, keys: tuple[str, str]) -> str:
    return ('default_environment = "cloud"\n[environments.cloud]\nprovider = "barman-cloud"\n'
            f'dsn = "{team.dsn}"\npg_bin_dir = "{team.cluster.bins.bin_dir}"\n'
            'posture = "pitr"\nschemas = ["app"]\nload_bearing_tables = ["app.ledger"]\n'
            f'[environments.cloud.barman_cloud]\ndestination = "{team.destination}"\n'
            f'server_name = "{SERVER_NAME}"\nendpoint_url = "{team.s3.endpoint}"\n'
            f'access_key_id = "file:{keys[0]}"\nsecret_access_key = "file:{keys[1]}"\n'
            f'bin_dir = "{team.bin_dir}"\n')


def write_keys(work_dir: Path, key_id: str, secret: str) -> tuple[str, str]:
    paths = (work_dir / "s3-key-id", work_dir / "s3-secret")
    for path, value in zip(paths, (key_id, secret), strict=True):
        path.write_text(value + "\n")
        path.chmod(0o600)
    return str(paths[0]), str(paths[1])


def assert_no_secret(team: TeamBarman, *folders: Path) -> None:
    """The secret key is in no file spectral wrote (the restored copy's settings, its state)."""
    for folder in folders:
        for p in folder.rglob("*"):
            if p.is_file() and p.stat().st_size < 1 << 20 and p.name != "s3-secret":
                assert team.s3.secret.encode() not in p.read_bytes(), p


@pytest.fixture
def team(work_dir: Path, bins: PgBinaries) -> Iterator[TeamBarman]:
    with team_barman(work_dir, bins) as t:
        keys = write_keys(work_dir, t.s3.key_id, t.s3.secret)
        (work_dir / "spectral.toml").write_text(toml_for(t, keys))
        try:
            yield t
        finally:
            spectral("dr", "teardown", "--all", cwd=work_dir)
    assert _processes_under(work_dir) == []


@pytest.mark.slow
@pytest.mark.server
def test_barman_cloud_restores_drills_and_never_writes(team: TeamBarman,
                                                       work_dir: Path) -> None:
    ro = ReadOnly(team, work_dir, grows_in=f"pg/{SERVER_NAME}/wals/")
    first = team.barman_backup()
    a_xid, a_time = team.commit(101)
    second = team.barman_backup()
    b_xid, _ = team.commit(102)
    team.commit(103)
    team.archived_now()

    listed = ro.run("dr", "backups", "--json")
    assert [b["id"] for b in listed["backups"]] == [first, second], listed
    assert listed["window"]["gaps"] == [], listed
    assert listed["backups"][0]["server_version"].split(".")[0] == str(team.cluster.bins.major)
    for args, want, source in ((["--target-xid", str(a_xid)], 101, first),
                               (["--target-time", a_time.isoformat()], 101, second),
                               (["--target-xid", str(b_xid), "--exclusive"], 101, second),
                               (["--target-xid", str(b_xid)], 102, second),
                               (["--latest"], 103, second)):
        inst = ro.run("dr", "restore", *args, "--json")
        assert ids(inst) == list(range(1, want + 1)), args
        assert inst["backup_id"] == source, (args, inst)
        assert_no_secret(team, Path(inst["data_dir"]).parent)
        ro.run("dr", "teardown", inst["id"])

    team.sql("alter system set archive_timeout = '2s'")
    team.sql("select pg_reload_conf()")
    team.commit(104)
    drill = ro.run("dr", "drill", "functional", "--json", archive_may_grow=True)
    assert drill["outcome"] == "pass", drill
    assert team.s3.secret not in json.dumps(drill)
    assert_no_secret(team, work_dir / ".spectral")
    assert ro.run("dr", "instances", "--json") == []
    for args in (["dr", "backup"], ["dr", "restore", "--in-place", "--latest", "--yes"],
                 ["dr", "wal", "stream"], ["dr", "expire", "--keep", "1", "--yes"]):
        err = ro.run(*args, expect=2)
        assert "never" in err, (args, err)


@pytest.mark.server
def test_faults_in_the_teams_destination_are_named(team: TeamBarman, work_dir: Path) -> None:
    ro = ReadOnly(team, work_dir, grows_in=f"pg/{SERVER_NAME}/wals/")
    team.barman_backup()
    team.commit(101)
    gone = team.archived_now()
    team.commit(102)
    team.archived_now()
    (key,) = [k for k in team.objects() if "/wals/" in k and k.split("/")[-1].startswith(gone)
              and ".backup" not in k]
    team.s3.client().delete_object(Bucket=BUCKET, Key=key)
    window = ro.run("dr", "backups", "--json")["window"]
    assert [g["missing_from"] for g in window["gaps"]] == [gone], json.dumps(window)
    err = ro.run("dr", "restore", "--latest", expect=3)
    assert gone in err, err

    conf = work_dir / "spectral.toml"
    conf.write_text(conf.read_text().replace(f"s3://{BUCKET}/pg", f"s3://{BUCKET}/nope"))
    err = ro.run("dr", "backups", expect=2)
    assert f"s3://{BUCKET}/nope/{SERVER_NAME}/" in err and len(err.strip().splitlines()) <= 2, err
