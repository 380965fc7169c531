"""A plain archive in S3 prefixes (provider = "archive", issue 30): the team's archive_command
pushes WAL to s3://<bucket>/pg/wal, its base backups (plain, tar.gz with a manifest, tar.zst
without one) are copied to s3://<bucket>/pg/base/<name>/. Listed without downloading the
backups (backup_label by a ranged GET, the major from the WAL page magic), restored to xid
and latest targets, a drill that PASSes, what would write refused, and every object's key and
ETag and the live pg_settings unchanged around every command; a missing segment, a wrong
prefix and keys that do not work named in one line."""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from archive_s3_world import TeamS3Archive, team_s3_archive
from barman_world import keys_checked
from conftest import SYSTEM_PG15, _processes_under, spectral
from spectral.pg.binaries import PgBinaries
from spectral.providers.archive.s3 import S3Object
from spectral.providers.archive.s3backups import (
    FIRST_READS,
    decompress_start,
    first_member,
    group,
    label_from_start,
    major_of_magic,
)
from spectral.providers.archive.s3repo import wal_name
from spectral.providers.archive.s3restore import safe_relative
from spectral.providers.archive.settings import ArchiveConfig, bucket_and_prefix
from spectral.runner import run
from test_attach_barman import assert_no_secret, write_keys
from test_attach_pgbackrest import ReadOnly, ids


def test_settings_take_s3_prefixes_with_keys_as_references_only() -> None:
    cfg = ArchiveConfig(base_backups="s3://team-bucket/pg/base/", wal="s3://team-bucket/pg/wal",
                        endpoint_url="https://s3.internal:9000",
                        access_key_id="env:KEY_ID", secret_access_key="file:/etc/secret")
    assert cfg.in_s3 and cfg.base_backups == "s3://team-bucket/pg/base"
    assert bucket_and_prefix(cfg.wal) == ("team-bucket", "pg/wal/")
    assert bucket_and_prefix("s3://team-bucket") == ("team-bucket", "")
    bad = [{"access_key_id": "AKIAXXXXXXXX", "secret_access_key": "env:S"},   # a key itself
           {"access_key_id": "env:K"},                                      # half of the pair
           {"wal": "/srv/wal"},                                             # one in S3 only
           {"base_backups": "s3://Bad_Bucket/x"}]
    for change in bad:
        with pytest.raises(ValidationError):
            ArchiveConfig(**{"base_backups": "s3://team-bucket/pg/base",
                             "wal": "s3://team-bucket/pg/wal", **change})
    with pytest.raises(ValidationError, match="only for S3"):
        ArchiveConfig(base_backups="/srv/base", wal="/srv/wal", endpoint_url="http://x:1")


def test_wal_objects_backups_and_paths_are_read_by_name() -> None:
    assert wal_name("pg/wal/000000010000000000000003.gz") == ("000000010000000000000003", ".gz")
    assert wal_name("000000020000000000000003") == ("000000020000000000000003", "")
    assert wal_name("00000002.history.zst") == ("00000002.history", ".zst")
    assert wal_name("000000010000000000000002.00000028.backup")[0].endswith(".backup")  # type: ignore[index]
    assert wal_name("README") is None and wal_name(".000000010000000000000003") is None
    at = datetime.now(UTC)
    found = group([S3Object(k, 1, "e", at) for k in (
        "n1/backup_label", "n1/PG_VERSION", "n1/base/1/1", "t1/base.tar.gz", "t1/pg_wal.tar.gz",
        "notes/readme.txt", "../x/base.tar", "top-level-file")])
    assert [(b.id, b.tar) for b in found] == [("n1", None), ("t1", "base.tar.gz")]
    assert safe_relative("base/1/1").parts == ("base", "1", "1")
    for bad in ("../etc/passwd", "/abs", "a//b", "a/./b"):
        with pytest.raises(Exception, match="not a path inside"):
            safe_relative(bad)
    assert major_of_magic(0xD110) == "15" and major_of_magic(0xD118) == "18"
    assert major_of_magic(0x1234) == "?" and major_of_magic(None) == "?"


@pytest.mark.parametrize("program", [None, "gzip", "lz4", "zstd"])
def test_backup_label_is_read_from_the_first_bytes_of_a_tar(tmp_path: Path,
                                                            program: str | None) -> None:
    """pg_basebackup puts backup_label first into base.tar: its first bytes, decompressed as
    far as they go, hold it whole (the rest of the tar is never fetched)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("backup_label", b"START WAL LOCATION: 0/2000028 (file x)\n"),
                           ("big", os.urandom(1 << 20))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    whole, suffix = buf.getvalue(), ""
    if program is not None:
        suffix = {"gzip": ".gz", "lz4": ".lz4", "zstd": ".zst"}[program]
        (tmp_path / "t").write_bytes(whole)
        run([program, "-c", str(tmp_path / "t")], timeout=60, stdout_path=tmp_path / "c")
        whole = (tmp_path / "c").read_bytes()
    reads: list[int] = []

    def first(n: int) -> bytes:
        reads.append(n)
        return whole[:n]

    assert label_from_start(first, suffix) == "START WAL LOCATION: 0/2000028 (file x)\n"
    # lz4's command line compresses 4 MB blocks: only a block read whole decompresses
    assert reads == list(FIRST_READS[:2 if program == "lz4" else 1]), reads
    assert first_member(decompress_start(whole[:20], suffix)) is None


def toml_for(team: TeamS3Archive, keys: tuple[str, str]) -> str:
    return ('default_environment = "files"\n[environments.files]\nprovider = "archive"\n'
            f'dsn = "{team.dsn}"\npg_bin_dir = "{team.cluster.bins.bin_dir}"\n'
            'posture = "pitr"\nschemas = ["app"]\nload_bearing_tables = ["app.ledger"]\n'
            f'[environments.files.archive]\nbase_backups = "{team.base_url}"\n'
            f'wal = "{team.wal_url}"\nendpoint_url = "{team.s3.endpoint}"\n'
            f'access_key_id = "file:{keys[0]}"\nsecret_access_key = "file:{keys[1]}"\n')


@pytest.fixture
def team(request: pytest.FixtureRequest, work_dir: Path,
         bins: PgBinaries) -> Iterator[TeamS3Archive]:
    with team_s3_archive(work_dir, bins, request.param) as t:
        keys = write_keys(work_dir, t.s3.key_id, t.s3.secret)
        (work_dir / "spectral.toml").write_text(toml_for(t, keys))
        try:
            yield t
        finally:
            spectral("dr", "teardown", "--all", cwd=work_dir)
    assert _processes_under(work_dir) == []


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.parametrize("team", ["gz"], indirect=True, ids=["gzip-wal"])
def test_a_plain_archive_in_s3_restores_drills_and_never_writes(team: TeamS3Archive,
                                                                work_dir: Path) -> None:
    ro = ReadOnly(team, work_dir, grows_in="pg/wal/")
    team.basebackup("plain")                                   # with a backup_manifest
    a_xid, _ = team.commit(101)
    team.basebackup("tar-gz", "-Ft", "--compress=gzip")
    b_xid, _ = team.commit(102)
    team.basebackup("tar-zst", "-Ft", "--no-manifest", zstd=True)
    team.commit(103)
    team.archived_now()

    listed = ro.run("dr", "backups", "--json")
    assert [b["id"] for b in listed["backups"]] == ["plain", "tar-gz", "tar-zst"], listed
    assert listed["window"]["gaps"] == [], listed
    assert {b["server_version"] for b in listed["backups"]} == {str(team.cluster.bins.major)}
    for args, want, source in ((["--target-xid", str(a_xid)], 101, "plain"),
                               (["--target-xid", str(b_xid), "--exclusive"], 101, "tar-gz"),
                               (["--latest"], 103, "tar-zst")):
        inst = ro.run("dr", "restore", *args, "--json")
        assert ids(inst) == list(range(1, want + 1)), json.dumps([args, inst], default=str)
        assert inst["backup_id"] == source, (args, inst)
        assert not list(Path(inst["data_dir"]).parent.glob("*-download")), inst
        assert_no_secret(team, Path(inst["data_dir"]).parent)  # type: ignore[arg-type]
        ro.run("dr", "teardown", inst["id"])

    team.sql("alter system set archive_timeout = '2s'")
    team.sql("select pg_reload_conf()")
    team.commit(104)
    drill = ro.run("dr", "drill", "functional", "--json", archive_may_grow=True)
    assert drill["outcome"] == "pass", drill
    assert team.s3.secret not in json.dumps(drill)
    assert_no_secret(team, work_dir / ".spectral")               # type: ignore[arg-type]
    assert ro.run("dr", "instances", "--json") == []

    # the accident, found in the team's WAL in S3, and the copy from just before it
    team.sql("delete from app.ledger where id <= 50")
    found = ro.run("--json", "dr", "find-damage", "--table", "app.ledger", "--op", "delete",
                   archive_may_grow=True)
    assert len(found) == 1 and found[0]["rows"] == 50, found
    # archive_timeout is 2s: the team's archiver may push a segment (autovacuum after the
    # delete) while these run; what was there must not change (found in a run: a flake)
    inst = ro.run("dr", "restore", *found[0]["target"].split(), "--json",
                  archive_may_grow=True)
    assert ids(inst) == list(range(1, 105))
    ro.run("dr", "teardown", inst["id"], archive_may_grow=True)
    for args in (["dr", "backup"], ["dr", "restore", "--in-place", "--latest", "--yes"],
                 ["dr", "wal", "stream"], ["dr", "expire", "--keep", "1", "--yes"]):
        ro.run(*args, expect=2, archive_may_grow=True)


@pytest.mark.server
@pytest.mark.parametrize("team", [None], indirect=True, ids=["plain-wal"])
def test_faults_in_the_teams_s3_archive_are_named(team: TeamS3Archive, work_dir: Path) -> None:
    ro = ReadOnly(team, work_dir, grows_in="pg/wal/")
    local = team.basebackup("plain")
    team.commit(101)
    gone = team.archived_now()
    team.commit(102)
    team.archived_now()
    victim = next(p for p in sorted((local / "base").rglob("*")) if p.is_file()
                  and p.stat().st_size > 8192)
    key = f"pg/base/plain/{victim.relative_to(local)}"
    data = bytearray(victim.read_bytes())
    data[4096] ^= 0xFF
    team.s3.client().put_object(Bucket=team.bucket, Key=key, Body=bytes(data))
    err = ro.run("dr", "restore", "--latest", expect=1)   # proven damaged: named, exit 1
    assert "backup plain is damaged" in err and "checksum mismatch for file" in err, err
    team.s3.client().upload_file(str(victim), team.bucket, key)
    inst = ro.run("dr", "restore", "--latest", "--json")      # plain segments, as pushed
    assert ids(inst) == list(range(1, 103)), inst
    ro.run("dr", "teardown", inst["id"])
    team.s3.client().delete_object(Bucket=team.bucket, Key=f"pg/wal/{gone}")
    window = ro.run("dr", "backups", "--json")["window"]
    assert [g["missing_from"] for g in window["gaps"]] == [gone], json.dumps(window)
    err = ro.run("dr", "restore", "--latest", expect=3)
    assert gone in err, err

    conf = work_dir / "spectral.toml"
    good = conf.read_text()
    conf.write_text(good.replace(team.wal_url, f"s3://{team.bucket}/nope"))
    err = ro.run("dr", "backups", expect=2)
    assert f"s3://{team.bucket}/nope/" in err and len(err.strip().splitlines()) <= 2, err
    conf.write_text(good)
    with keys_checked():
        res = spectral("dr", "backups", cwd=work_dir)
    assert res.returncode == 3 and "InvalidAccessKeyId" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) <= 2 and team.s3.secret not in res.stderr


@pytest.mark.server
@pytest.mark.skipif(not (SYSTEM_PG15 / "pg_waldump").exists(), reason="needs PostgreSQL 15")
@pytest.mark.parametrize("team", ["gz"], indirect=True, ids=["gzip-wal"])
def test_a_tar_backups_major_comes_from_its_wal_and_another_is_refused(
        team: TeamS3Archive, work_dir: Path) -> None:
    """A tar backup's PG_VERSION has no fixed place in base.tar: its major is read from the
    page magic of its first WAL segment, and a pg_bin_dir of another major is refused before
    anything is restored."""
    team.basebackup("tar-gz", "-Ft", "--compress=gzip")
    team.commit(101)
    team.archived_now()
    ro = ReadOnly(team, work_dir, grows_in="pg/wal/")
    listed = ro.run("dr", "backups", "--json")
    assert [b["server_version"] for b in listed["backups"]] == [str(team.cluster.bins.major)]
    conf = work_dir / "spectral.toml"
    conf.write_text(conf.read_text().replace(str(team.cluster.bins.bin_dir), str(SYSTEM_PG15)))
    err = ro.run("dr", "restore", "--latest", expect=2)
    assert "pg_bin_dir holds PostgreSQL 15" in err, err
    assert not list((work_dir / ".spectral").rglob("*-download")), err


def test_the_catalog_reads_a_backup_again_only_when_its_objects_change(tmp_path: Path) -> None:
    """Listing reads backup_label (a ranged GET of base.tar.gz), the manifest's tail and the
    major once; the next listing reads nothing but the object list until an ETag changes."""
    from barman_world import plain_s3_server
    from spectral.providers.archive.s3 import S3Prefixes
    from spectral.providers.archive.s3backups import S3Catalog, manifest_end_in

    label = (b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n"
             b"START TIME: 2026-12-05 18:49:07 UTC\nSTART TIMELINE: 1\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("backup_label")
        info.size = len(label)
        tar.addfile(info, io.BytesIO(label))
    files = ",\n".join(f'{{ "Path": "base/1/{i}", "Size": 8192 }}' for i in range(3000))
    manifest = ('{ "PostgreSQL-Backup-Manifest-Version": 1,\n"Files": [\n' + files +
                '],\n"WAL-Ranges": [\n{ "Timeline": 1, "Start-LSN": "0/2000028", '
                '"End-LSN": "0/2000138" }\n],\n"Manifest-Checksum": "ab"}\n')
    assert manifest_end_in(manifest[-2000:]) == "0/2000138" and len(manifest) > 64 << 10
    with plain_s3_server() as s3:
        client = s3.client()
        client.create_bucket(Bucket="team-cat")
        client.put_object(Bucket="team-cat", Key="pg/base/b1/base.tar.gz", Body=buf.getvalue())
        client.put_object(Bucket="team-cat", Key="pg/base/b1/backup_manifest", Body=manifest)
        cfg = ArchiveConfig(base_backups="s3://team-cat/pg/base", wal="s3://team-cat/pg/wal",
                            endpoint_url=s3.endpoint)
        prefixes = S3Prefixes(cfg, None)
        prefixes._client = client
        gets: list[str] = []
        real_get = prefixes.get

        def counted(url: str, key: str, **kw: int | None) -> bytes:
            gets.append(key)
            return real_get(url, key, **kw)  # type: ignore[arg-type]

        prefixes.get = counted  # type: ignore[method-assign]
        majors: list[str] = []
        catalog = S3Catalog(prefixes, lambda seg: majors.append(seg) or "18",
                            tmp_path / "s3-backups.json")
        (entry,) = catalog.entries(catalog.backups(), {})
        assert (entry.start_lsn, entry.stop_lsn, entry.server_version) == (
            "0/2000028", "0/2000138", "18")
        assert gets == ["b1/base.tar.gz", "b1/backup_manifest"], gets
        assert majors == ["000000010000000000000002"]
        gets.clear()
        assert catalog.entries(catalog.backups(), {}) == [entry] and gets == []
        client.put_object(Bucket="team-cat", Key="pg/base/b1/backup_manifest",
                          Body=manifest.replace("0/2000138", "0/2000200"))
        (again,) = catalog.entries(catalog.backups(), {})
        assert again.stop_lsn == "0/2000200" and len(gets) == 2, gets
