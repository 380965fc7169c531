"""What each archived WAL segment holds, remembered (providers/local/walcommits.py): the walk back
to the newest commit gives the same answer from the cache as without it, reads only the
segments archived since the last walk (counted: pg_waldump runs, pgBackRest archive-get
calls), never serves a segment replaced in the repository (same name, other content) from the
cache, and ignores a damaged cache file or entry. On real WAL: a cluster with 1 MB segments,
one segment with commits, then a commit-free stretch (an idle database's segment switches)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import local_provider, sql
from spectral.errors import UsageError
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.conn import connect
from spectral.pg.osuser import make_owned_dir
from spectral.providers.local import walcommits, walread
from spectral.providers.local.wal import Segment, format_lsn, list_segments, parse_lsn
from spectral.providers.pgbackrest.repo import PgBackRestRepository
from spectral.recovery_target import LsnTarget

MB = 1 << 20
IDLE = 12    # commit-free segments after the last commit: past the first chunks of the walk


@dataclass
class Wal:
    """An archive folder of 1 MB segments and the cluster writing it."""

    cluster: Cluster
    archive: Path
    commit_times: list[datetime] = field(default_factory=list)

    def switch(self, *, commit: int | None = None) -> str:
        """One more segment, with a committed row or only a non-transactional message."""
        with self.cluster.connect() as conn:
            if commit is not None:
                xid = conn.execute("insert into t values (%s) returning txid_current()",
                                   (commit,)).fetchone()[0]  # type: ignore[index]
                self.commit_times.append(conn.execute(
                    f"select pg_xact_commit_timestamp('{xid}'::xid)").fetchone()[0])  # type: ignore[index]
            conn.execute("select pg_logical_emit_message(false, 'idle', 'x')")
            name = str(conn.execute("select pg_walfile_name(pg_switch_wal() - 1)")
                       .fetchone()[0])  # type: ignore[index]
        deadline = time.monotonic() + 30
        while not (self.archive / name).exists():
            assert time.monotonic() < deadline, f"{name} was not archived"
            time.sleep(0.02)
        return name


@pytest.fixture(scope="module")
def wal(base_dir: Path, bins: PgBinaries) -> Iterator[Wal]:
    root = Path(tempfile.mkdtemp(prefix="wal-commits-", dir=base_dir))
    root.chmod(0o755)
    archive = make_owned_dir(root / "archive", 0o755)
    c = Cluster(bins, root / "data", socket_dir_for(root / "run"), free_port(),
                root / "log" / "postgres.log", port_chosen=True)
    c.initdb(conf={"wal_level": "replica", "fsync": "off", "archive_mode": "on",
                   "archive_command": f"cp %p {archive}/%f", "track_commit_timestamp": "on",
                   "checkpoint_timeout": "1h"}, wal_segsize_mb=1)
    c.start()
    try:
        with c.connect() as conn:
            conn.execute("create table t (id int)")
        w = Wal(c, archive)
        w.switch(commit=1)
        for _ in range(IDLE):
            w.switch()
        yield w
    finally:
        c.stop(timeout=20, discard=True)


@pytest.fixture
def copy(wal: Wal, work_dir: Path) -> Path:
    """The archive as it is now, in a folder the test may change."""
    dest = work_dir / "archive"
    shutil.copytree(wal.archive, dest)
    return dest


def lineage(folder: Path) -> list[Segment]:
    return list_segments(folder, seg_size=MB)


def truth(bins: PgBinaries, folder: Path, high: int | None) -> tuple[int, datetime] | None:
    """The newest committed commit before `high`, read from every segment, nothing cached."""
    segs = lineage(folder)
    summary = walread.summarize(bins, {s: folder for s in segs}, segs)
    found = [(c.lsn, c.time) for c in summary.commits
             if c.committed and (high is None or c.lsn < high)]
    return found[-1] if found else None


@contextlib.contextmanager
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The pg_waldump runs made inside the block, by the number of segments each read."""
    calls: list[int] = []
    real = walread._waldump

    def counting(bins: PgBinaries, tmp: str, tli: int, sub: list[Segment], out: Path,
                 **kw: Any) -> Any:
        calls.append(len(sub))
        return real(bins, tmp, tli, sub, out, **kw)

    monkeypatch.setattr(walread, "_waldump", counting)
    yield calls
    monkeypatch.setattr(walread, "_waldump", real)


def walk(bins: PgBinaries, folder: Path, cache: Path,
         where: dict[Segment, Path] | None = None) -> walcommits.Walk:
    segs = lineage(folder)
    return walcommits.Walk(bins, where if where is not None else {s: folder for s in segs},
                           segs, None, cache)


@pytest.mark.server
def test_a_hit_answers_as_a_miss_and_the_second_walk_reads_only_new_segments(
        wal: Wal, copy: Path, bins: PgBinaries, work_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cache = work_dir / "wal-commits.json"
    expected = truth(bins, copy, None)
    assert expected is not None and expected[1] == wal.commit_times[-1]
    with counted(monkeypatch) as first:
        assert walcommits.newest_commit(walk(bins, copy, cache), low=0, high=None) == expected
    assert sum(first) >= IDLE        # the commit-free stretch was read back to the commit
    with counted(monkeypatch) as again:
        assert walcommits.newest_commit(walk(bins, copy, cache), low=0, high=None) == expected
    # only the newest segment (no segment after it yet, so never remembered) is read again
    assert again == [1], again
    # two idle segments archived since: the walk reads them and the one before, nothing older
    for _ in range(2):
        wal.switch()
    for seg in lineage(wal.archive):
        if not (copy / seg.name).exists():
            shutil.copy(wal.archive / seg.name, copy / seg.name)
    with counted(monkeypatch) as later:
        assert walcommits.newest_commit(walk(bins, copy, cache), low=0, high=None) == expected
    assert sum(later) <= 3, later
    # a bound: the newest commit before it, the same with and without the cache
    first_seg = lineage(copy)[0]
    assert walcommits.newest_commit(walk(bins, copy, cache), low=0,
                                    high=first_seg.end_lsn()) == truth(bins, copy,
                                                                       first_seg.end_lsn())
    # after `low`: none (the commits are all before it)
    assert walcommits.newest_commit(walk(bins, copy, cache), low=expected[0] + 1,
                                    high=None) is None


@pytest.mark.server
def test_a_replaced_segment_is_read_again_and_a_damaged_cache_is_a_miss(
        wal: Wal, copy: Path, bins: PgBinaries, work_dir: Path) -> None:
    cache = work_dir / "wal-commits.json"
    expected = truth(bins, copy, None)
    assert walcommits.newest_commit(walk(bins, copy, cache), low=0, high=None) == expected
    doc = json.loads(cache.read_text())
    idle = lineage(copy)[3]
    assert doc["segments"][idle.name]["commit"] is None
    # a remembered fact is what the walk answers with while the file is the same one...
    planted = [format_lsn(idle.start_lsn() + 40), "2001-01-01T00:00:00+00:00"]
    doc["segments"][idle.name]["commit"] = planted
    cache.write_text(json.dumps(doc))
    got = walcommits.newest_commit(walk(bins, copy, cache), low=0, high=None)
    assert got is not None and got[0] == parse_lsn(planted[0])
    # ...and never once the archive holds another file under its name
    data = (copy / idle.name).read_bytes()
    (copy / idle.name).unlink()
    (copy / idle.name).write_bytes(data)
    assert walcommits.newest_commit(walk(bins, copy, cache), low=0, high=None) == expected
    # a damaged file, and damaged entries, are misses: the same answer, no error
    for text in ("{not json", json.dumps({"version": 1, "segments": {
            s.name: {"key": 7, "commit": ["x", None]} for s in lineage(copy)}}),
            json.dumps({"version": 1, "segments": {
                s.name: {"key": "k", "commit": ["0/0", "2001-01-01T00:00:00"]}
                for s in lineage(copy)}}), "\x00\xff"):
        cache.write_text(text)
        assert walcommits.newest_commit(walk(bins, copy, cache), low=0, high=None) == expected
    cache.unlink()
    cache.mkdir()        # cannot be read or written: read from the WAL, still answered
    assert walcommits.newest_commit(walk(bins, copy, cache), low=0, high=None) == expected


class FakeTool:
    """pgBackRest's info, repo-ls and archive-get over a folder: each WAL file stored under
    its SHA-1, as pgBackRest stores it; archive-get calls counted."""

    stanza = "s"

    def __init__(self, source: Path) -> None:
        self.source, self.gets = source, 0

    def info(self) -> dict[str, Any]:
        return {"archive": [{"id": "15-1"}], "backup": [], "db": []}

    def repo_ls(self, path: str, repo: int) -> dict[str, Any]:
        out = {}
        for p in sorted(self.source.iterdir()):
            sha1 = hashlib.sha1(p.read_bytes()).hexdigest()
            out[f"0000000100000000/{p.name}-{sha1}"] = {"type": "file"}
        return out

    def archive_get(self, name: str, dest: Path) -> bool:
        self.gets += 1
        shutil.copyfile(self.source / name, dest)
        return True


@pytest.mark.server
def test_pgbackrest_walks_from_the_repository_checksum_without_fetching_again(
        wal: Wal, copy: Path, bins: PgBinaries, work_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    tool = FakeTool(copy)
    repo = PgBackRestRepository(make_owned_dir(work_dir / "mirror", 0o750), tool=tool)  # type: ignore[arg-type]
    cache = repo.root / "wal-commits.json"
    expected = truth(bins, copy, None)

    def pgb_walk() -> walcommits.Walk:
        where = repo.wal_files()
        return walcommits.Walk(bins, where, sorted(where), None, cache)

    assert walcommits.newest_commit(pgb_walk(), low=0, high=None) == expected
    # the next command: a fresh view of the repository; a cold mirror fetches only the newest
    shutil.rmtree(repo.archive)
    repo.forget()
    tool.gets = 0
    with counted(monkeypatch) as again:
        assert walcommits.newest_commit(pgb_walk(), low=0, high=None) == expected
    assert again == [1] and tool.gets <= 2, (again, tool.gets)   # + a header for the size
    # a segment pushed again with other content (a byte past its SWITCH record: same WAL):
    # its checksum in the listing changes, so its fact is not served, and the copy in the
    # mirror is fetched again
    idle = lineage(copy)[-3]
    (repo.archive / idle.name).unlink(missing_ok=True)
    tool.archive_get(idle.name, repo.archive / idle.name)
    doc = json.loads(cache.read_text())
    doc["segments"][idle.name]["commit"] = [format_lsn(idle.start_lsn() + 40),
                                            "2001-01-01T00:00:00+00:00"]
    cache.write_text(json.dumps(doc))
    data = bytearray((copy / idle.name).read_bytes())
    data[-1] ^= 0xFF
    (copy / idle.name).write_bytes(bytes(data))
    repo.forget()
    assert walcommits.newest_commit(pgb_walk(), low=0, high=None) == expected
    assert (repo.archive / idle.name).read_bytes() == bytes(data)


@pytest.mark.server
def test_an_lsn_target_reads_no_commit_time_and_a_refusal_still_names_the_window(
        work_dir: Path, bins: PgBinaries, monkeypatch: pytest.MonkeyPatch) -> None:
    walks: list[int] = []
    real = walcommits.newest_commit

    def counting(walk: walcommits.Walk, **kw: Any) -> Any:
        walks.append(1)
        return real(walk, **kw)

    monkeypatch.setattr(walcommits, "newest_commit", counting)
    with local_provider(work_dir, bins, "items") as env:
        env.backup()
        sql(env, "insert into items values (101, 'after')")
        end = str(sql(env, "select pg_current_wal_insert_lsn()::text")[0][0])
        inst = env.restore(LsnTarget(parse_lsn(end)))
        assert walks == []            # planned in LSNs: no walk back for the last commit
        with connect(inst.dsn) as conn:
            assert conn.execute("select count(*) from items").fetchone() == (101,)
        env.teardown(inst.id)
        with pytest.raises(UsageError) as refused:
            env.restore(LsnTarget(parse_lsn("FFFFFFFF/FFFFFFFF")))
        # the refusal names the window with its end time (the last commit's), read for it
        latest = env.window().latest_time
        assert latest is not None
        assert latest.isoformat(timespec="milliseconds") in refused.value.message, \
            refused.value.message
        assert walks
