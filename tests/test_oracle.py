"""The oracle itself (tests/oracle.py): PostgreSQL's own recovery reaches what it should, tells
an unreachable target apart, and sees a damaged archive as the end of what can be recovered. A
check that cannot fail proves nothing, so each verdict is seen both ways."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import oracle
from conftest import local_provider, sql, table_digests
from spectral.pg.binaries import PgBinaries


def _source(p: object) -> oracle.Source:
    local = p.local  # type: ignore[attr-defined]
    return oracle.Source(p.repo.root, local.paths.data_dir,  # type: ignore[attr-defined]
                         local.cluster().conninfo(), local.database)


def _notes(conninfo: str) -> dict[str, str]:
    return table_digests(conninfo, ("public",))


@pytest.mark.server
def test_oracle_reaches_times_and_transactions_and_refuses_what_is_not_there(
        work_dir: Path, bins: PgBinaries) -> None:
    with local_provider(work_dir, bins, "notes") as p:
        backup = p.backup()
        sql(p, "insert into notes values (1001, 'a')")
        time.sleep(0.05)
        between = datetime.now(UTC)
        time.sleep(0.05)
        sql(p, "insert into notes values (1002, 'b')")
        xid = int(sql(p, "select xid::text from pg_last_committed_xact()")[0][0])
        p.flush_archive()
        live = _notes(p.local.cluster().conninfo())

        latest = oracle.restore(bins.bin_dir, _source(p), backup.id, oracle.Target("latest"),
                                None, _notes)
        assert latest.reached and latest.digests == live

        at = oracle.restore(bins.bin_dir, _source(p), backup.id, oracle.time_target(between),
                            None, _notes)
        assert at.reached and at.digests != live
        assert at.digests is not None and at.digests["public.notes"].startswith("101:")

        before = oracle.restore(bins.bin_dir, _source(p), backup.id,
                                oracle.Target("xid", str(xid), inclusive=False), None, _notes)
        assert before.reached and before.digests == at.digests

        never = oracle.restore(bins.bin_dir, _source(p), backup.id,
                               oracle.Target("xid", str(xid + 1000)), None, _notes)
        assert not never.reached and oracle.NOT_REACHED in never.how

        # after the last commit: the state there is the end of the complete WAL
        now = oracle.restore(bins.bin_dir, _source(p), backup.id,
                             oracle.time_target(datetime.now(UTC)), None, _notes)
        assert now.reached and now.digests == live and now.how == "end of the complete WAL"


@pytest.mark.server
def test_oracle_sees_a_damaged_archive_segment_as_the_end_of_recovery(
        work_dir: Path, bins: PgBinaries) -> None:
    with local_provider(work_dir, bins, "notes") as p:
        backup = p.backup()
        sql(p, "alter table notes alter column note set storage external")   # no compression
        sql(p, "insert into notes select g, repeat('x', 3000) from generate_series(1001, 9000) g")
        p.flush_archive()
        stop = oracle._lsn(backup.stop_lsn) // (16 << 20)
        after = sorted(f for f in p.repo.archive.iterdir() if len(f.name) == 24
                       and int(f.name[8:16], 16) * 256 + int(f.name[16:], 16) > stop)
        assert len(after) >= 2, "the load did not cross a segment"
        with after[0].open("r+b") as f:   # inside a record, in the middle of the segment
            f.seek(5 * 8192 + 1000)
            f.write(b"\xff" * 16)
        out = oracle.restore(bins.bin_dir, _source(p), backup.id, oracle.Target("latest"),
                             None, _notes)
        assert not out.reached, out
        assert "ended before the end of the WAL" in out.how
