"""A snapshot on a replica must see every row while replay prunes under it (found by
bench/impact.py: a `--content` drill from a replica under pgbench FAILed, the replica's
snapshot holding 697 of pgbench_tellers' 700 rows).

The scan's sessions import the snapshot of the session that took it. Replay, meeting a record
that removes row versions (on-access pruning of HOT updates, vacuum), lists once the sessions
whose xmin conflicts with it and waits for them; a session that imports the old snapshot while
replay already waits is not on that list. When the exporting session then ended, replay went
on and removed the versions under the scan: fewer rows, no error. The exporter now holds its
transaction until the last range is read (verify/replica.py, SnapshotLost), and a scan whose
exporter did not survive it is read again."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import ClusterFactory
from spectral.errors import CouldNotVerify
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster
from spectral.verify import fingerprint
from spectral.verify.compare import table_facts
from spectral.verify.fingerprint import Options, take
from test_replica_snapshot import replica_dsn, replica_of

ROWS = 100


@pytest.fixture
def pair(work_dir: Path, bins: PgBinaries, make_cluster: ClusterFactory
         ) -> Iterator[tuple[Cluster, Cluster]]:
    """A primary with core.hot (ROWS rows, updated in place all the time) and core.bulk (read
    first, so core.hot is read a while after the snapshot), and its streaming replica."""
    primary = make_cluster()
    with primary.connect() as conn:
        conn.execute("create schema core")
        conn.execute("create table core.hot (id int primary key, n int not null)")
        conn.execute(f"insert into core.hot select g, 0 from generate_series(1, {ROWS}) g")
        conn.execute("create table core.bulk as select g as id, repeat('x', 200) as pad "
                     "from generate_series(1, 150000) g")
    replica = replica_of(primary, work_dir / "replica", bins)
    try:
        yield primary, replica
    finally:
        replica.stop(timeout=20, discard=True)


def _updating(primary: Cluster, stop: threading.Event) -> None:
    """HOT updates of core.hot's rows, ~500 a second: the pages fill with dead versions, which
    on-access pruning removes (and logs, with its conflict horizon); replay still stands still
    often enough for a snapshot to be pinned to one LSN (verify/replica.py)."""
    with primary.connect(autocommit=True) as conn:
        while not stop.wait(0.002):
            conn.execute("update core.hot set n = n + 1 where id = (random() * %s)::int + 1",
                         (ROWS - 1,))


@pytest.mark.server
def test_a_replica_snapshot_sees_every_row_while_replay_prunes_under_it(
        pair: tuple[Cluster, Cluster]) -> None:
    primary, replica = pair
    stop = threading.Event()
    writers = [threading.Thread(target=_updating, args=(primary, stop)) for _ in range(2)]
    for w in writers:
        w.start()
    counts = []
    try:
        for _ in range(20):
            # one session: core.bulk first, core.hot read last, replay going on meanwhile
            doc = take(replica_dsn(primary, replica), Options(("core",), content=True,
                                                             workers=1))
            facts = table_facts(doc, "core.hot")
            assert facts is not None
            counts.append(facts.rows)
    finally:
        stop.set()
        for w in writers:
            w.join(30)
    assert counts == [ROWS] * len(counts)


def _terminating(times: int) -> Any:
    """held_through, but the snapshot's own session is ended first, `times` times."""
    real = fingerprint.held_through
    left = [times]

    def held_through(conn: psycopg.Connection[Any]) -> None:
        if left[0] > 0:
            left[0] -= 1
            with psycopg.connect(conn.info.dsn, autocommit=True) as other:
                other.execute("select pg_terminate_backend(%s)", (conn.info.backend_pid,))
        real(conn)

    return held_through


@pytest.mark.server
def test_a_scan_whose_snapshot_session_ended_is_read_again(
        make_cluster: ClusterFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    source = make_cluster()
    with source.connect() as conn:
        conn.execute("create schema core")
        conn.execute("create table core.t as select g as id from generate_series(1, 10) g")
    monkeypatch.setattr(fingerprint, "held_through", _terminating(1))
    doc = take(source.conninfo(), Options(("core",), content=True))
    facts = table_facts(doc, "core.t")
    assert facts is not None and facts.rows == 10     # the second scan's, whole

    monkeypatch.setattr(fingerprint, "held_through", _terminating(99))
    with pytest.raises(CouldNotVerify) as lost:
        take(source.conninfo(), Options(("core",), content=True))
    assert "3 times" in lost.value.message and "ended during the scan" in lost.value.message
    assert "hot_standby_feedback" in (lost.value.hint or "")
