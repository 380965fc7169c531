"""A drill's snapshot pinned to the LSN its copy is restored to (verify/pinning.py), on real
servers: commits made visible before their WAL is written (synchronous_commit=off) while the
snapshot is taken on the primary must not fail a good backup; a replica that cancels the
snapshot's scan to replay a VACUUM (a conflict with recovery) is taken again, and when it
keeps doing so the drill cannot verify (exit 3) with the settings that prevent it, never a
FAIL."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import notes_environment
from spectral.errors import CouldNotVerify
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.verify.fingerprint import Options, take
from test_replica_snapshot import _caught_up, replica_dsn, replica_of

pytestmark = pytest.mark.server


@contextlib.contextmanager
def writing(primary: Cluster, synchronous_commit: str, first: int) -> Iterator[list[int]]:
    """One session committing a row into core.notes (ids from `first` on) every millisecond
    or so, for the block; yields how many it committed (in a list, counted as it goes)."""
    stop, done = threading.Event(), [0]

    def writes() -> None:
        with primary.connect(autocommit=True) as conn:
            conn.execute(f"set synchronous_commit = {synchronous_commit}")
            n = first
            while not stop.is_set():
                n += 1
                conn.execute("insert into core.notes values (%s, 'async')", (n,))
                done[0] += 1
                time.sleep(0.001)

    writer = threading.Thread(target=writes)
    writer.start()
    try:
        yield done
    finally:
        stop.set()
        writer.join(30)


def test_async_commits_while_the_snapshot_is_taken_do_not_fail_the_drill(
        work_dir: Path) -> None:
    from spectral.drills.functional import DrillRequest, run_functional
    from spectral.drills.result import DrillOutcome

    with notes_environment(work_dir) as environment:
        primary = environment.provider.local.cluster()   # type: ignore[attr-defined]
        for i in range(2):
            with writing(primary, "off", 10_000 * (i + 1)) as committed:
                result = run_functional(environment, DrillRequest())
            assert committed[0] > 0
            assert result.outcome is DrillOutcome.PASS, (result.error, [
                (c.name, c.outcome, c.evidence) for c in result.checks if c.outcome != "pass"])


def _conflicting_vacuum(primary: Cluster, replica: Cluster) -> None:
    """Rows the replica's open snapshot still sees, deleted and vacuumed away on the primary
    and replayed on the replica (max_standby_streaming_delay = 0: it cancels at once)."""
    with primary.connect(autocommit=True) as conn:
        conn.execute("delete from core.other")
        conn.execute("vacuum core.other")
        conn.execute("insert into core.other select g from generate_series(1, 200) g")
    _caught_up(primary, replica)


@pytest.mark.parametrize("times", [1, 3])
def test_a_conflict_with_recovery_during_a_replica_scan_is_never_a_fail(
        work_dir: Path, bins: PgBinaries, times: int) -> None:
    with notes_environment(work_dir) as environment:
        primary = environment.provider.local.cluster()   # type: ignore[attr-defined]
        with primary.connect(autocommit=True) as conn:
            conn.execute("create table core.other (id int)")
            conn.execute("insert into core.other select g from generate_series(1, 200) g")
        replica = replica_of(primary, work_dir / "replica", bins)
        try:
            with replica.connect(autocommit=True) as conn:
                conn.execute("alter system set max_standby_streaming_delay = 0")
                conn.execute("alter system set hot_standby_feedback = off")
                conn.execute("select pg_reload_conf()")
            _caught_up(primary, replica)
            left = [times]

            def between_tables(stage: str, done: int, total: int) -> None:
                # a first table read, not every one yet: the scan's snapshot is open
                if stage == "scan" and 0 < done < total and left[0] > 0:
                    left[0] -= 1
                    _conflicting_vacuum(primary, replica)

            opts = Options(("core",), content=True, workers=1, progress=between_tables)
            dsn = replica_dsn(primary, replica)
            if times < 3:   # taken again: the second snapshot is read whole
                doc = take(dsn, opts)
                assert doc.tables["core.other"].rows == 200 and left == [0]
                assert all(t.ok for t in doc.tables.values()), doc.tables
            else:
                with pytest.raises(CouldNotVerify, match="conflict with recovery") as exc:
                    take(dsn, opts)
                assert exc.value.hint is not None and "hot_standby_feedback" in exc.value.hint
        finally:
            replica.stop(timeout=20, discard=True)


def test_a_sequence_used_while_the_snapshot_is_read_does_not_fail_the_drill(
        work_dir: Path) -> None:
    """A sequence is not read in the snapshot (it is not MVCC): its value is read before it,
    so the copy's, logged ahead at the recovery point, is never behind it."""
    from spectral.drills.functional import DrillRequest, run_functional
    from spectral.drills.result import DrillOutcome

    with notes_environment(work_dir) as environment:
        primary = environment.provider.local.cluster()   # type: ignore[attr-defined]
        with primary.connect(autocommit=True) as conn:
            conn.execute("create table core.tally (id bigserial primary key)")
        stop = threading.Event()

        def inserts() -> None:
            with primary.connect(autocommit=True) as conn:
                while not stop.is_set():
                    conn.execute("insert into core.tally default values")

        writer = threading.Thread(target=inserts)
        writer.start()
        try:
            result = run_functional(environment, DrillRequest(content=True))
        finally:
            stop.set()
            writer.join(30)
        assert result.outcome is DrillOutcome.PASS, (result.error, [
            e for c in result.checks if c.outcome is DrillOutcome.FAIL
            for e in c.evidence if not e.endswith(", match")])
