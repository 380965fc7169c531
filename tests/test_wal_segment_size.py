"""WAL segments are not always 16 MB: initdb --wal-segsize (1 MB to 1 GB; Amazon RDS uses
64 MB). A segment's name depends on the size (segments per log id = 4 GiB / size), so the size
is discovered per lineage (providers/local/walsize.py), never assumed: a name read with the
wrong size gives the wrong segment number and LSN, so a wrong window, wrong gaps and wrong
targets. Pure arithmetic at 1, 16 and 64 MB; the header checks; and a team's plain archive at
64 MB and at 1 MB, its WAL crossing a log id (where a wrong size reads a hole of hundreds of
segments), restored to an LSN and a time in the middle of the WAL, and drilled."""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from attach_world import TeamArchive, TeamStanza, team_archive, team_stanza
from conftest import SYSTEM_PG15, spectral
from spectral.errors import CouldNotVerify
from spectral.pg.binaries import PgBinaries, find_binaries
from spectral.providers.local import walheader, walsize
from spectral.providers.local.wal import (
    DEFAULT_SEG_SIZE,
    Segment,
    parse_lsn,
    parse_segment,
    segment_name,
    segment_of,
    segments_per_id,
)
from test_attach_archive import toml_for
from test_attach_pgbackrest import ReadOnly, ids, needs_team
from test_attach_pgbackrest import toml_for as stanza_toml

MB = 1 << 20
SIZES = [1 * MB, 16 * MB, 64 * MB]


# ---- names, segment numbers and LSNs --------------------------------------------------------
@pytest.mark.parametrize("size", SIZES, ids=["1MB", "16MB", "64MB"])
def test_names_numbers_and_lsns_at_each_segment_size(size: int) -> None:
    per = segments_per_id(size)
    assert per == {MB: 4096, 16 * MB: 256, 64 * MB: 64}[size]
    first_of_log1 = parse_segment("000000010000000100000000", size)
    assert first_of_log1 == Segment(1, per, size=size)
    assert first_of_log1.start_lsn() == 1 << 32 and first_of_log1.name == "000000010000000100000000"
    last_of_log0 = parse_segment(f"0000000100000000{per - 1:08X}", size)
    assert last_of_log0 is not None and last_of_log0.segno + 1 == first_of_log1.segno
    assert last_of_log0.end_lsn() == first_of_log1.start_lsn()      # consecutive: no gap
    # a name past the log id's last segment is no segment of this size
    assert parse_segment(f"0000000100000000{per:08X}", size) is None
    # LSN -> segment -> name, as pg_walfile_name names it on a cluster of that size
    lsn = parse_lsn("1/2345678")
    name = segment_name(3, segment_of(lsn, size), size)
    assert name == {MB: "000000030000000100000023", 16 * MB: "000000030000000100000002",
                    64 * MB: "000000030000000100000000"}[size]
    seg = parse_segment(name + ".partial", size)
    assert seg is not None and seg.partial and seg.start_lsn() <= lsn < seg.end_lsn()


# ---- the first page header -------------------------------------------------------------------
def segment_file(path: Path, size: int, header_size: int | None = None, sysid: int = 7) -> Path:
    """A (sparse) file with a segment's long first page header saying `header_size`."""
    with path.open("wb") as f:
        f.write(struct.pack("<HHIQI4xQII", 0xD118, walheader.LONG_HEADER, 1, 0, 0, sysid,
                            header_size or size, walheader.BLOCK))
        f.truncate(size)
    return path


def test_a_header_is_checked_against_the_lineages_size(tmp_path: Path) -> None:
    big = segment_file(tmp_path / "000000010000000000000003", 64 * MB)
    header = walheader.read(big)
    assert walheader.problem(header, 7, 64 * MB) is None
    said = walheader.problem(header, 7, 16 * MB)
    assert said is not None and "segment size 67108864" in said
    assert walsize.from_header(big) == 64 * MB
    # truncated, or a size no cluster has: no evidence
    assert walsize.from_header(segment_file(tmp_path / "short", 64 * MB, 128 * MB)) is None
    assert walsize.from_header(segment_file(tmp_path / "odd", 3 * MB)) is None


def test_an_archive_whose_segments_disagree_is_named(tmp_path: Path) -> None:
    a = segment_file(tmp_path / "000000010000000000000003", 16 * MB)
    b = segment_file(tmp_path / "000000010000000000000004", 64 * MB)
    with pytest.raises(CouldNotVerify, match="disagree on the segment size: "
                       "000000010000000000000003 is of 16 MB, 000000010000000000000004 of 64 MB"):
        walsize.of_folders(tmp_path, where="the team's archive")
    b.unlink()
    assert walsize.of_folders(tmp_path, where="x") == 16 * MB
    a.write_bytes(b"\0" * 100)            # the only segment, damaged: the size is unknown
    with pytest.raises(CouldNotVerify, match="cannot be read"):
        walsize.of_folders(tmp_path, where="x")
    a.unlink()                            # no WAL at all: no name to misread
    assert walsize.of_folders(tmp_path, where="x") == DEFAULT_SEG_SIZE
    # pg_receivewal's first file, zero-filled, not written yet: nothing to read either
    (tmp_path / "000000010000000000000003.partial").write_bytes(bytes(8192))
    assert walsize.of_folders(tmp_path, where="x") == DEFAULT_SEG_SIZE


def test_a_repository_that_fetches_on_read_fetches_the_newest_segment_only(
        tmp_path: Path) -> None:
    names = ["000000010000000000000003", "000000010000000000000004",
             "000000010000000000000005.partial", "00000002.history"]
    fetched: list[str] = []

    def fetch(name: str) -> Path:
        fetched.append(name)
        return segment_file(tmp_path / name, MB)

    assert walsize.of_archive(names, lambda n: None, fetch, "x") == MB
    assert fetched == ["000000010000000000000004"]


# ---- a team's archive at 64 MB and at 1 MB ---------------------------------------------------
@pytest.fixture(params=[64, 1], ids=["64MB", "1MB"])
def team(request: pytest.FixtureRequest, work_dir: Path,
         bins: PgBinaries) -> Iterator[TeamArchive]:
    """The team's WAL starts two segments before the end of log id 0, so it crosses into
    log id 1 while the test writes."""
    per = segments_per_id(request.param * MB)
    with team_archive(work_dir, bins, None, wal_segsize_mb=request.param,
                      first_wal=f"0000000100000000{per - 2:08X}") as t:
        (work_dir / "spectral.toml").write_text(toml_for(t))
        try:
            yield t
        finally:
            spectral("dr", "teardown", "--all", cwd=work_dir)


def lsn_now(team: TeamArchive | TeamStanza) -> int:
    return parse_lsn(str(team.sql("select pg_current_wal_insert_lsn()::text")[0][0]))


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def between(a: datetime, b: datetime) -> str:
    return (a + (b - a) / 2).isoformat()


@pytest.mark.slow       # 64 MB segments: ~20 s of the two
@pytest.mark.server
def test_a_team_archive_of_another_segment_size_has_the_right_window_targets_and_drill(
        team: TeamArchive, work_dir: Path) -> None:
    size = int(team.sql("select setting::bigint from pg_settings "
                        "where name = 'wal_segment_size'")[0][0])
    ro = ReadOnly(team, work_dir, grows_in="wal/")
    team.basebackup("plain")
    _, a_time = team.commit(101)
    team.archived_now()
    time.sleep(0.05)
    _, b_time = team.commit(102)
    team.archived_now()
    team.commit(103)
    middle = lsn_now(team)                      # after 103, before 104
    team.commit(104)
    after_last = lsn_now(team)
    team.archived_now()
    logs = {p.name[8:16] for p in team.wal.iterdir() if len(p.name) == 24}
    assert logs == {"00000000", "00000001"}, logs    # the WAL crossed a log id

    window = ro.run("dr", "backups", "--json")["window"]
    assert window["gaps"] == [], window
    latest = parse_lsn(window["latest_lsn"])    # the last record: the final switch
    assert after_last <= latest < (segment_of(after_last, size) + 1) * size, window
    assert parse_lsn(window["earliest_lsn"]) < middle

    inst = ro.run("dr", "restore", "--target-lsn", lsn_text(middle), "--json")
    assert ids(inst) == list(range(1, 104)), inst
    ro.run("dr", "teardown", inst["id"])
    inst = ro.run("dr", "restore", "--target-time", between(a_time, b_time), "--json")
    assert ids(inst) == list(range(1, 102)), inst
    ro.run("dr", "teardown", inst["id"])

    team.sql("alter system set archive_timeout = '2s'")
    team.sql("select pg_reload_conf()")
    team.commit(105)
    drill = ro.run("dr", "drill", "functional", "--json", archive_may_grow=True)
    assert drill["outcome"] == "pass", drill


# ---- a team's pgBackRest stanza at 64 MB: the size from a segment fetched with archive-get ----
@pytest.mark.server
@needs_team
def test_a_team_stanza_at_64mb_has_the_right_window_and_targets(work_dir: Path) -> None:
    size = 64 * MB
    first_wal = f"0000000100000000{segments_per_id(size) - 2:08X}"
    with team_stanza(work_dir, find_binaries(SYSTEM_PG15), 64, first_wal) as team:
        (work_dir / "spectral.toml").write_text(stanza_toml(team))
        try:
            ro = ReadOnly(team, work_dir)
            _, a_time = team.commit(101)
            team.archived_now()
            time.sleep(0.05)
            _, b_time = team.commit(102)
            middle = lsn_now(team)              # after 102, before 103
            team.commit(103)
            after_last = lsn_now(team)
            team.archived_now()
            logs = {p.name for p in (team.repo / "archive").glob("*/*/*") if p.is_dir()}
            assert logs == {"0000000100000000", "0000000100000001"}, logs

            window = ro.run("dr", "backups", "--json")["window"]
            assert window["gaps"] == [], window
            latest = parse_lsn(window["latest_lsn"])
            assert after_last <= latest < (segment_of(after_last, size) + 1) * size, window
            inst = ro.run("dr", "restore", "--target-lsn", lsn_text(middle), "--json")
            assert ids(inst) == list(range(1, 103)), inst
            ro.run("dr", "teardown", inst["id"])
            inst = ro.run("dr", "restore", "--target-time", between(a_time, b_time), "--json")
            assert ids(inst) == list(range(1, 102)), inst
        finally:
            spectral("dr", "teardown", "--all", cwd=work_dir)


@pytest.mark.server
def test_a_backup_of_another_segment_size_than_the_archive_is_refused(
        work_dir: Path, bins: PgBinaries) -> None:
    """The backup's pg_control against the size the archive's WAL was read in: a backup of a
    1 MB cluster with an archive of 16 MB segments is another cluster's archive."""
    from spectral.pg.cluster import Cluster, free_port, socket_dir_for
    from spectral.providers.local.repo import LocalRepository
    from spectral.providers.local.restore import Recovery

    cluster = Cluster(bins, work_dir / "data", socket_dir_for(work_dir / "run"), free_port(),
                      work_dir / "log" / "postgres.log")
    cluster.initdb(wal_segsize_mb=1)
    assert walsize.from_control(bins, cluster.data_dir) == MB
    repo = LocalRepository(work_dir / "repo")
    repo.archive.mkdir(parents=True)
    recovery = Recovery(bins, repo)
    recovery._same_segment_size(cluster.data_dir)            # no WAL: nothing to compare
    segment_file(repo.archive / "000000010000000000000003", MB)
    recovery._same_segment_size(cluster.data_dir)            # the same size
    (repo.archive / "000000010000000000000003").unlink()
    segment_file(repo.archive / "000000010000000000000003", 16 * MB)
    with pytest.raises(CouldNotVerify, match=r"WAL segments of 1 MB .* are of 16 MB"):
        recovery._same_segment_size(cluster.data_dir)
