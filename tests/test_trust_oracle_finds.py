"""Disagreements between spectral and the oracle (tests/oracle.py, PostgreSQL's own recovery)
that the lifecycle's long profile found, each kept with who was wrong.

PostgreSQL 15, long profile (session 10): a time target just before a transaction prepared and
still pending, inside the segment where an in-place restore's timeline branched. Spectral
restored the model's rows. The oracle's PostgreSQL found the target too ("recovery stopping
before commit"), then died at the end of recovery: it reads the PREPARE record of a
transaction still prepared there from pg_wal under the old timeline's name
(pg_wal/000000010000000000000009 "has already been removed"), while redo had fetched that
segment as the new timeline's file. The oracle took any failed recovery of a time in the past
for "nothing after it" and answered with the end of the complete WAL: rows committed after the
target. The oracle was wrong; it now falls back only when PostgreSQL said it ran out of WAL,
and puts the old timeline's file of a branching segment in pg_wal as well."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import oracle
from conftest import local_provider, sql, table_digests
from spectral.pg.binaries import PgBinaries
from spectral.pg.conn import connect
from spectral.providers.local.provider import LocalProvider
from spectral.recovery_target import TargetKind, target_of


def _notes(conninfo: str) -> dict[str, str]:
    return table_digests(conninfo, ("public",))


def _prepare_then_commit(p: LocalProvider) -> int:
    """PREPARE a delete, an ordinary commit, then COMMIT PREPARED; the prepared xid."""
    with connect(p.local.cluster().conninfo(), autocommit=True) as conn:
        conn.execute("begin")
        conn.execute("delete from notes where id between 11 and 13")
        xid = int(conn.execute("select txid_current()").fetchone()[0])  # type: ignore[index]
        conn.execute("prepare transaction 'oracle-finds'")
        conn.execute("insert into notes values (2001, 'after the target')")
        conn.execute("commit prepared 'oracle-finds'")
    return xid


@pytest.mark.server
def test_a_target_before_a_pending_prepare_where_a_timeline_branched(
        work_dir: Path, pg15: PgBinaries) -> None:
    _target_before_a_pending_prepare(work_dir, pg15)


@pytest.mark.server
def test_a_target_before_a_pending_prepare_where_a_timeline_branched_pg18(
        work_dir: Path, bins: PgBinaries) -> None:
    _target_before_a_pending_prepare(work_dir, bins)


def _target_before_a_pending_prepare(work_dir: Path, pg: PgBinaries) -> None:
    with local_provider(work_dir, pg, "notes") as p:
        sql(p, "alter system set max_prepared_transactions = 8")
        p.local.down()
        p.local.up()
        backup = p.backup()
        sql(p, "delete from notes where id <= 10")
        at_target = _notes(p.local.cluster().conninfo())
        time.sleep(0.05)
        between = datetime.now(UTC)
        time.sleep(0.05)
        prepared = _prepare_then_commit(p)
        # the new timeline branches after the ordinary commit, in the segment of the PREPARE
        p.restore_in_place(target_of(TargetKind.XID, str(prepared), exclusive=True),
                           confirmed=True)
        for (gid,) in sql(p, "select gid from pg_prepared_xacts"):   # brought back pending
            sql(p, f"rollback prepared '{gid}'")
        assert sql(p, "select timeline_id from pg_control_checkpoint()")[0][0] == 2
        p.flush_archive()

        source = oracle.Source(p.repo.root, p.local.paths.data_dir,
                               p.local.cluster().conninfo(), p.local.database)
        out = oracle.restore(pg.bin_dir, source, backup.id, oracle.time_target(between),
                             None, _notes)
        assert out.reached, out.how
        assert out.how == "reached", out.how     # the target itself, not the end of the WAL
        assert out.digests == at_target

        inst = p.restore(target_of(TargetKind.TIME, between.isoformat()), keep=False)
        try:
            restored = _notes(inst.dsn)
        finally:
            p.teardown(inst.id)
        assert restored == at_target, "spectral's restore is not the state at the target"
