"""What an adversarial first user of the attached backends found (issue 30), kept as
regression tests: each one failed before its fix.

- A plain archive's backup of a server with a tablespace: the plain backup's pg_tblspc link
  points at the team's own folder (pg_basebackup -T), a tar backup's tablespace_map at the
  live server's tablespace. A throwaway restored as it was recovered into those folders: the
  team's backup and the live server's files were written."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from attach_world import TeamArchive, team_archive
from conftest import SYSTEM_PG15, _processes_under, spectral
from spectral.pg.binaries import PgBinaries
from spectral.pg.osuser import make_owned_dir
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


def tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def spaced_rows(dsn: str) -> int:
    from spectral.pg.conn import connect

    with connect(dsn) as conn:
        row = conn.execute("select count(*) from app.spaced").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.server
@pytest.mark.parametrize("fmt", ["plain", "tar"])
def test_a_backup_with_a_tablespace_is_restored_inside_the_throwaway(
        team: TeamArchive, work_dir: Path, fmt: str) -> None:
    live_space = make_owned_dir(team.root / "space", 0o700)
    team.sql(f"create tablespace space location '{live_space}'")
    team.sql("create table app.spaced (id int) tablespace space;"
             "insert into app.spaced select generate_series(1, 50)")
    if fmt == "plain":   # the team maps the tablespace next to the backup, as -T asks
        team.basebackup("b", f"--tablespace-mapping={live_space}={team.base / 'b-space'}")
    else:                # no manifest: nothing checks the files before recovery
        team.basebackup("b", "-Ft", "--no-manifest")
    team.sql("insert into app.spaced select generate_series(51, 60)")
    team.commit(101)
    team.archived_now()
    ro = ReadOnly(team, work_dir, grows_in="wal/")
    live_before = tree_digest(live_space)
    inst = ro.run("dr", "restore", "--latest", "--json")
    assert ids(inst) == list(range(1, 102))
    assert spaced_rows(inst["dsn"]) == 60
    home = Path(inst["data_dir"]).parent
    for link in (Path(inst["data_dir"]) / "pg_tblspc").iterdir():
        assert link.resolve().is_relative_to(home), (link, link.resolve())
    ro.run("dr", "teardown", inst["id"])
    assert tree_digest(live_space) == live_before
    assert spaced_rows(team.cluster.conninfo("app")) == 60


def test_a_tablespace_map_line_that_is_not_an_oid_is_refused(tmp_path: Path) -> None:
    from spectral.errors import CouldNotVerify
    from spectral.providers.archive.restore import tablespace_map

    (tmp_path / "tablespace_map").write_text("16401 /srv/space one\n")
    assert tablespace_map(tmp_path / "tablespace_map") == {"16401": "/srv/space one"}
    (tmp_path / "tablespace_map").write_text("../../etc /srv/x\n")
    with pytest.raises(CouldNotVerify):
        tablespace_map(tmp_path / "tablespace_map")


@pytest.mark.server
def test_a_drill_on_a_quiet_server_right_after_a_switch_passes(
        team: TeamArchive, work_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a segment switch (the previous drill's, archive_timeout's) a quiet server stands
    at the next segment's first byte: the snapshot's LSN is there, pg_switch_wal() has nothing
    to switch, and that segment is not archived until something writes. Every record before
    the snapshot is archived already: the drill must not wait for the empty segment."""
    from spectral.providers.attached import anchor

    monkeypatch.setattr(anchor, "SWITCHED_WAIT", 10.0)     # it never comes: fail fast
    team.sql("grant execute on function pg_switch_wal() to drill")
    team.basebackup("b")
    team.commit(101)
    ro = ReadOnly(team, work_dir, grows_in="wal/")
    first = ro.run("dr", "drill", "functional", "--json", archive_may_grow=True)
    assert first["outcome"] == "pass", first
    at = str(team.sql("select pg_current_wal_lsn()")[0][0])
    assert at.endswith("000000"), at       # the first drill's switch: a segment's first byte
    again = ro.run("dr", "drill", "functional", "--json", archive_may_grow=True)
    assert again["outcome"] == "pass", again


@pytest.mark.server
@pytest.mark.skipif(not (SYSTEM_PG15 / "pg_waldump").exists(), reason="needs PostgreSQL 15")
def test_a_pg_bin_dir_of_another_major_is_named_not_read_as_damage(
        team: TeamArchive, work_dir: Path) -> None:
    """PostgreSQL 15's pg_waldump cannot read 18's WAL: before, `dr backups` listed every
    segment as damaged, exit 0."""
    team.basebackup("b")
    team.commit(101)
    team.archived_now()
    (work_dir / "spectral.toml").write_text(
        toml_for(team).replace(str(team.cluster.bins.bin_dir), str(SYSTEM_PG15)))
    ro = ReadOnly(team, work_dir, grows_in="wal/")
    for args in (["dr", "backups"], ["dr", "restore", "--latest"]):
        err = ro.run(*args, expect=2)
        assert "pg_bin_dir holds PostgreSQL 15" in err and "damaged" not in err, (args, err)


@pytest.mark.server
def test_a_drill_that_waits_in_vain_says_what_to_set(
        team: TeamArchive, work_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """archive_timeout off and no grant of pg_switch_wal(): the drill's result named neither
    (the advice was a hint, which a drill does not record)."""
    from spectral.providers.attached import anchor

    monkeypatch.setattr(anchor, "NO_TIMEOUT_WAIT", 3.0)
    team.basebackup("b")
    team.commit(101)       # after the backup's switch: in a segment not archived yet
    ro = ReadOnly(team, work_dir, grows_in="wal/")
    drill = ro.run("dr", "drill", "functional", "--json", expect=3)
    assert drill["outcome"] == "could_not_verify", drill
    assert "archive_timeout" in drill["error"] and "pg_switch_wal" in drill["error"], drill


@pytest.mark.server
def test_a_tar_backup_with_a_tablespace_and_a_manifest_is_checked_and_restored(
        team: TeamArchive, work_dir: Path) -> None:
    live_space = make_owned_dir(team.root / "space", 0o700)
    team.sql(f"create tablespace space location '{live_space}'")
    team.sql("create table app.spaced (id int) tablespace space;"
             "insert into app.spaced select generate_series(1, 50)")
    team.basebackup("b", "-Ft", "--compress=gzip")
    team.commit(101)
    team.archived_now()
    inst = ReadOnly(team, work_dir, grows_in="wal/").run("dr", "restore", "--latest", "--json")
    assert spaced_rows(inst["dsn"]) == 50 and ids(inst) == list(range(1, 102))


def test_wal_not_yet_archived_is_counted_from_the_archivers_last_segment() -> None:
    from spectral.providers.attached.anchor import unarchived_bytes

    seg = 16 * 1024 * 1024
    assert unarchived_bytes(4 * seg + 100, "000000010000000000000003", seg) == 100
    assert unarchived_bytes(4 * seg, "000000010000000000000003", seg) == 0
    assert unarchived_bytes(4 * seg + 5, "000000010000000000000003.00000028.backup", seg) == 5
    assert unarchived_bytes(4 * seg, "00000002.history", seg) is None


@pytest.mark.server
def test_status_counts_the_live_servers_wal_not_yet_archived(
        team: TeamArchive, work_dir: Path) -> None:
    """`dr status` printed "WAL: None bytes not yet in the repository"."""
    team.basebackup("b")
    team.commit(101)
    status = ReadOnly(team, work_dir, grows_in="wal/").run("dr", "status", "--json",
                                                         expect=1)
    assert isinstance(status["wal"]["rpo_bytes"], int) and status["wal"]["rpo_bytes"] > 0


@pytest.mark.server
def test_backup_folders_named_as_teams_name_them_are_listed_and_restored(
        team: TeamArchive, work_dir: Path) -> None:
    """A folder with a space or a non-ASCII letter in its name was silently not a backup:
    `dr backups` said "no backups yet"."""
    team.basebackup("nightly 2026-12-05 02:00")
    team.commit(101)
    team.basebackup("sauvegarde-été", "-Ft")
    team.commit(102)
    team.archived_now()
    ro = ReadOnly(team, work_dir, grows_in="wal/")
    listed = ro.run("dr", "backups", "--json")
    assert [b["id"] for b in listed["backups"]] == ["nightly 2026-12-05 02:00",
                                                    "sauvegarde-été"], listed
    inst = ro.run("dr", "restore", "--latest", "--json")
    assert inst["backup_id"] == "sauvegarde-été" and ids(inst) == list(range(1, 103))
    ro.run("dr", "teardown", inst["id"])
    team.sql("grant execute on function pg_switch_wal() to drill")
    drill = ro.run("dr", "drill", "functional", "--backup", "nightly 2026-12-05 02:00",
                   "--json", archive_may_grow=True)
    assert drill["outcome"] == "pass" and drill["backup_id"] == "nightly 2026-12-05 02:00"


@pytest.mark.server
def test_a_wal_folder_the_server_user_cannot_read_is_named(team: TeamArchive,
                                                          work_dir: Path) -> None:
    """Read as root, the window was whole (exit 0); every restore then failed as the server
    user with "recovery ended at ..., before the end of the archive"."""
    import os

    team.basebackup("b")
    team.commit(101)
    team.archived_now()
    mode, owner = team.wal.stat().st_mode, team.wal.stat().st_uid
    os.chown(team.wal, 0, -1)
    team.wal.chmod(0o700)
    try:
        ro = ReadOnly(team, work_dir, grows_in="wal/")
        for args in (["dr", "backups"], ["dr", "restore", "--latest"]):
            err = ro.run(*args, expect=2)
            assert "archive.wal" in err and "cannot read it" in err, (args, err)
    finally:
        os.chown(team.wal, owner, -1)
        team.wal.chmod(mode)


@pytest.mark.server
def test_a_segment_the_archive_command_is_still_copying_is_waited_for(
        team: TeamArchive, work_dir: Path) -> None:
    """`cp %p /wal/%f` writes in place: a drill or find-damage that found the name went on
    and read half a segment ("damaged: ... truncated", exit 3)."""
    import shutil
    import threading
    import time

    team.basebackup("b")
    team.commit(101)
    team.sql("delete from app.ledger where id = 7")
    half = team.wal / team.archived_now()
    whole = half.read_bytes()
    half.write_bytes(whole[:4 * 1024 * 1024])   # as the archiver's cp left it half way
    shutil.chown(half, "spectral", "spectral")

    def finish() -> None:
        for _ in range(4):        # still being written: its mtime moves
            time.sleep(1)
            half.touch()
        half.write_bytes(whole)

    writer = threading.Thread(target=finish)
    writer.start()
    try:
        res = spectral("dr", "find-damage", "--table", "app.ledger", cwd=work_dir)
    finally:
        writer.join()
    assert res.returncode == 0, (res.stdout, res.stderr)
    assert "delete of 1 row(s)" in res.stdout, res.stdout


def test_a_backup_label_time_is_read_in_its_time_zone() -> None:
    from spectral.providers.archive.backups import label_time

    assert label_time("2026-12-05 12:46:51 EST").isoformat() == "2026-12-05T17:46:51+00:00"
    assert label_time("2026-12-06 02:46:31 JST").isoformat() == "2026-12-05T17:46:31+00:00"
    assert label_time("2026-07-05 12:46:51 EDT").isoformat() == "2026-07-05T16:46:51+00:00"
    assert label_time("2026-12-05 20:00:00 +03").isoformat() == "2026-12-05T17:00:00+00:00"
    assert label_time("2026-12-05 17:46:31 UTC").isoformat() == "2026-12-05T17:46:31+00:00"
    # shared by -06, -05 and +08: the latest it can mean
    assert label_time("2026-12-05 12:00:00 CST").isoformat() == "2026-12-05T18:00:00+00:00"


@pytest.mark.server
def test_a_time_target_before_a_backup_taken_west_of_utc_is_not_restored_from_it(
        team: TeamArchive, work_dir: Path) -> None:
    """log_timezone = America/New_York: backup_label says '12:46:51 EST', read as 12:46:51
    UTC, five hours early. A target between two commits was restored from the backup taken
    after the second one: that commit's row was in the copy, exit 0."""
    import time

    team.basebackup("utc")
    team.commit(101)
    time.sleep(1.1)
    target = team.sql("select now()")[0][0]
    time.sleep(1.1)
    team.commit(102)
    team.sql("alter system set log_timezone = 'America/New_York'")
    team.sql("select pg_reload_conf()")
    team.basebackup("new-york")
    team.commit(103)
    team.archived_now()
    ro = ReadOnly(team, work_dir, grows_in="wal/")
    inst = ro.run("dr", "restore", "--target-time", target.isoformat(), "--json")
    assert ids(inst) == list(range(1, 102)), inst
    assert inst["backup_id"] == "utc"


def test_a_compressed_segment_is_in_flight_only_while_it_does_not_decompress(
        tmp_path: Path) -> None:
    import gzip
    import os

    from spectral.providers.archive.repo import in_flight

    name = "000000010000000000000007"
    whole = gzip.compress(os.urandom(64 * 1024))
    path = tmp_path / f"{name}.gz"
    path.write_bytes(whole[:len(whole) // 2])
    assert in_flight(path, name)                  # gzip > still writing it
    path.write_bytes(whole)
    assert not in_flight(path, name)              # complete: archived now
    path.write_bytes(whole[:len(whole) // 2])
    os.utime(path, (1, 1))
    assert not in_flight(path, name)              # short and old: damage, not in flight
