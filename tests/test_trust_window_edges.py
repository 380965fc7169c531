"""Found by the lifecycle's long profile in session 11, each with a test that failed before.

PostgreSQL 18: segments missing from the archive starting with the one that holds a backup's
end. The backup's own WAL reaches its end and no further, so its interval is that one point,
and every later point lies in the hole. The hole was taken to lie before the interval (it
starts in the backup's last segment, before the backup's end), so a time target after the
backup was answered with "no transaction ended after it in the archive" and restored to the
backup's end, without the commit at the target: exit 0.

PostgreSQL 15: a drill restores to the LSN its snapshot read, where the live server had
written to. PostgreSQL's LSN target is inclusive by default: it also replays the record that
starts exactly there, and a COMMIT PREPARED written right after the snapshot does (a two-phase
transaction's commit is one record). The copy then held a transaction the snapshot did not
see, a false failure. The drill's target is now exclusive: every record before the LSN."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import local_provider, sql
from spectral.errors import CouldNotVerify
from spectral.pg.binaries import PgBinaries
from spectral.pg.conn import connect
from spectral.providers.base import CopyRequest
from spectral.recovery_target import TargetKind, target_of
from spectral.verify.fingerprint import Options, take


def _ids(dsn: str) -> list[int]:
    with connect(dsn) as conn:
        return [r[0] for r in conn.execute("select id from items order by id")]


@pytest.mark.server
def test_a_target_after_a_backup_whose_last_segment_is_missing_is_refused(
        work_dir: Path, bins: PgBinaries) -> None:
    with local_provider(work_dir, bins, "items") as p:
        backup = p.backup()
        sql(p, "insert into items values (1001, 'after the backup')")
        at = sql(p, "select now()")[0][0]
        time.sleep(0.05)
        sql(p, "select pg_switch_wal()")
        sql(p, "insert into items values (1002, 'later')")
        p.flush_archive()
        first = int(backup.stop_lsn.split("/")[0], 16) * 256 + int(
            backup.stop_lsn.split("/")[1], 16) // (16 << 20)
        gone = [f for f in p.repo.archive.iterdir() if len(f.name) == 24
                and int(f.name[8:16], 16) * 256 + int(f.name[16:], 16) in (first, first + 1)]
        assert len(gone) == 2, sorted(f.name for f in p.repo.archive.iterdir())
        for f in gone:
            f.unlink()
        window = p.window()
        assert window.gaps, window.to_json()
        target = target_of(TargetKind.TIME, at.astimezone(UTC).isoformat())
        assert target.at < datetime.now(UTC)
        with pytest.raises(CouldNotVerify, match="is missing from the archive"):
            p.restore(target, keep=False)


@pytest.mark.server
def test_a_drill_target_excludes_a_commit_that_starts_at_the_snapshots_lsn(
        work_dir: Path, bins: PgBinaries) -> None:
    with local_provider(work_dir, bins, "items") as p:
        sql(p, "alter system set max_prepared_transactions = 8")
        p.local.down()
        p.local.up()
        p.backup()
        dsn = p.local.cluster().conninfo()
        with connect(dsn, autocommit=True) as conn:
            conn.execute("begin")
            conn.execute("insert into items values (2001, 'prepared')")
            conn.execute("prepare transaction 'after-the-snapshot'")
        taken = take(dsn, Options(("public",)))
        # the race, made certain: the snapshot's LSN is where the commit's record starts (the
        # snapshot itself writes WAL here, hint bits under checksums, so it is set, not read)
        at = str(sql(p, "select pg_current_wal_insert_lsn()::text")[0][0])
        sql(p, "commit prepared 'after-the-snapshot'")
        snapshot = replace(taken, source=replace(taken.source, lsn=at))
        target = p.target_after(snapshot, CopyRequest())
        inst = p.restore(target, keep=False)
        assert 2001 not in _ids(inst.dsn), target.describe()
