"""Issue 32, item 1: read the source where it hurts least. A drill takes its snapshot on a
streaming replica (snapshot_dsn) at the replica's replay LSN, which becomes the recovery
target; a server that is not a replica of the environment's cluster is refused (exit 2); the
content scan of the live source is throttled (source_read_rate: unit-tested on a fake clock);
the drill reports how long its snapshot held the xmin horizon back."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import make_conninfo

from conftest import ClusterFactory, notes_environment, spectral
from spectral.config.models import EnvironmentConfig
from spectral.errors import UsageError
from spectral.pg.binaries import PgBinaries
from spectral.pg.cluster import Cluster, free_port, socket_dir_for
from spectral.pg.osuser import make_owned_dir, server_identity
from spectral.runner import run
from spectral.verify.fingerprint import options_for
from spectral.verify.replica import ReplayMoved, Replica, replica_for, too_busy
from spectral.verify.throttle import BLOCK_BYTES, MB, ReadRate, range_bytes, read_rate

TOML = ('[environments.staging]\nprovider = "local"\nposture = "pitr"\nschemas = ["core"]\n'
        'load_bearing_tables = ["core.notes"]\n')


# ---- the throttle, on a fake clock --------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_read_rate_spaces_the_ranges_by_their_bytes() -> None:
    clock = FakeClock()
    rate = ReadRate(10 * MB, clock=clock, sleep=clock.sleep)
    for _ in range(5):                      # five ranges of 20 MB, read in no time
        rate.take(20 * MB)
    assert clock.slept == pytest.approx([2.0, 2.0, 2.0, 2.0])   # the first starts at once
    assert clock.now - 100.0 == pytest.approx(8.0)   # 100 MB: 80 MB before the last starts


def test_read_rate_does_not_sleep_when_reading_is_slower_than_the_rate() -> None:
    clock = FakeClock()
    rate = ReadRate(10 * MB, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        rate.take(10 * MB)
        clock.now += 1.5          # the read itself took longer than its budget
    assert clock.slept == []


def test_read_rate_is_one_budget_for_every_session() -> None:
    clock = FakeClock()
    rate = ReadRate(1 * MB, clock=clock, sleep=lambda s: None)   # the clock stands still
    waits: list[float] = []
    lock = threading.Lock()

    def session() -> None:
        for _ in range(10):
            waited = rate.take(MB // 10)
            with lock:
                waits.append(waited)

    threads = [threading.Thread(target=session) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # 40 reads of 0.1 MB at 1 MB/s: they were granted at 0, 0.1, ..., 3.9 s, whoever asked
    assert sorted(waits) == pytest.approx([i / 10 for i in range(40)])


def test_read_rate_of_nothing_is_unlimited_and_ranges_cost_their_blocks() -> None:
    assert read_rate(0) is None and read_rate(None) is None
    assert isinstance(read_rate(50), ReadRate) and read_rate(50).rate == 50 * MB  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        ReadRate(0)
    assert range_bytes(10, None, None) == 10 * BLOCK_BYTES
    assert range_bytes(0, None, None) == BLOCK_BYTES        # an empty table still costs a read
    assert range_bytes(10_000, 4096, 8192) == 4096 * BLOCK_BYTES
    assert range_bytes(10_000, 8192, None) == (10_000 - 8192) * BLOCK_BYTES


def test_only_the_live_source_is_throttled() -> None:
    env = EnvironmentConfig.model_validate({"provider": "local", "source_read_rate": 40})
    assert options_for(env, live=True).read_rate == 40
    assert options_for(env).read_rate == 0           # a drill's copy is read at full speed
    assert EnvironmentConfig.model_validate({"provider": "local"}).source_read_rate == 0


def test_a_snapshot_dsn_with_a_password_must_be_a_secret_reference() -> None:
    with pytest.raises(ValueError, match="secret reference"):
        EnvironmentConfig.model_validate({"provider": "local",
                                          "snapshot_dsn": "postgres://u:pw@replica/app"})
    ok = EnvironmentConfig.model_validate({"provider": "local",
                                           "snapshot_dsn": "env:REPLICA_DSN"})
    assert ok.snapshot_dsn == "env:REPLICA_DSN"


def test_replay_that_never_stands_still_is_could_not_verify() -> None:
    err = too_busy(ReplayMoved("0/3000060", "0/3000128"), "could not fingerprint x")
    assert "0/3000060 to 0/3000128" in err.message and err.exit_code == 3
    lag = Replica("host=r", 1234, 0.5, True).describe()
    assert "1,234 bytes (0.5 s) behind the primary" in lag and "hot_standby_feedback is on" in lag


# ---- a primary and its streaming replica --------------------------------------------------
def replica_of(primary: Cluster, root: Path, bins: PgBinaries) -> Cluster:
    """A streaming replica of `primary` (pg_basebackup -R, as the server user), started."""
    home = make_owned_dir(root, 0o755)
    run([str(bins.path("pg_basebackup")), "-D", str(home / "data"), "-R", "-X", "stream",
         "-c", "fast", "-h", str(primary.socket_dir), "-p", str(primary.port),
         "-U", primary.superuser], timeout=300, run_as=server_identity())
    replica = Cluster(bins, home / "data", socket_dir_for(home / "run"), free_port(),
                      home / "log" / "postgres.log", superuser=primary.superuser,
                      database=primary.database, port_chosen=True)
    replica.start()
    return replica


def replica_dsn(primary: Cluster, replica: Cluster) -> str:
    return make_conninfo(primary.conninfo(), host=str(replica.socket_dir),
                         port=str(replica.port))


@pytest.fixture
def staging(work_dir: Path, bins: PgBinaries) -> Iterator[tuple[Cluster, Cluster]]:
    """The local environment "staging" (core.notes: one row, one backup) and a replica."""
    with notes_environment(work_dir) as environment:
        primary = environment.provider.local.cluster()   # type: ignore[attr-defined]
        replica = replica_of(primary, work_dir / "replica", bins)
        try:
            yield primary, replica
        finally:
            replica.stop(timeout=20, discard=True)


def _replay_lsn(replica: Cluster) -> str:
    with replica.connect() as conn:
        row = conn.execute("select pg_last_wal_replay_lsn()::text").fetchone()
    assert row is not None
    return str(row[0])


def _caught_up(primary: Cluster, replica: Cluster) -> None:
    from spectral.waits import wait_until

    with primary.connect() as conn:
        row = conn.execute("select pg_current_wal_lsn()").fetchone()
    assert row is not None
    target = row[0]

    def replayed() -> bool:
        with replica.connect() as conn:
            got = conn.execute("select pg_last_wal_replay_lsn() >= %s", (target,)).fetchone()
        return bool(got and got[0])

    wait_until(replayed, timeout=60, what="the replica to replay the primary's WAL")


@pytest.mark.server
def test_a_drill_from_a_replica_restores_to_its_replay_lsn(
        work_dir: Path, staging: tuple[Cluster, Cluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    from spectral.config.load import load_config
    from spectral.drills.functional import DrillRequest, run_functional
    from spectral.drills.result import DrillOutcome
    from spectral.environment import open_environment

    primary, replica = staging
    with primary.connect() as conn:
        conn.execute("insert into core.notes select g, 'before' from generate_series(2, 50) g")
    _caught_up(primary, replica)
    with replica.connect() as conn:      # the test's own hand on replay, not the tool's
        conn.execute("select pg_wal_replay_pause()")
    with primary.connect() as conn:      # after the replica's snapshot point: not in the copy
        conn.execute("insert into core.notes select g, 'after' from generate_series(51, 80) g")
    replayed = _replay_lsn(replica)

    (work_dir / "spectral.toml").write_text(
        TOML + f"snapshot_dsn = '{replica_dsn(primary, replica)}'\nsource_read_rate = 1000\n")
    environment = open_environment(load_config(None, cwd=work_dir), "staging")
    result = run_functional(environment, DrillRequest(content=True))

    assert result.outcome is DrillOutcome.PASS, result
    assert result.recovery_target is not None and replayed in result.recovery_target
    assert result.row_counts == {"core.notes": 50}      # the primary holds 80
    on_replica = {c.name: c for c in result.checks}["snapshot on a replica of the source"]
    assert "behind the primary" in on_replica.detail and on_replica.outcome is DrillOutcome.PASS
    held = result.timings["xmin_held"]
    assert 0 < held <= result.timings["provision"]   # released before the restore began

    elsewhere = make_conninfo(replica_dsn(primary, replica), dbname="template1")
    with pytest.raises(UsageError, match="connects to database template1"):
        replica_for(environment.config.model_copy(update={"snapshot_dsn": elsewhere}),
                    primary.conninfo())

    with replica.connect() as conn:
        conn.execute("select pg_wal_replay_resume()")
    _caught_up(primary, replica)
    text = spectral("dr", "snapshot", "--content", cwd=work_dir)
    assert text.returncode == 0, text.stderr
    assert f"LSN {_replay_lsn(replica)}" in text.stdout and "behind the primary" in text.stderr

    # replay moving all along, and in every attempt between the two reads of the replay LSN
    # (as a busy primary's replay does on a quiet machine; made sure of here): the snapshot is
    # pinned all the same, where the prefix of the commits replayed in between that its xids
    # prove it saw ends (verify/pinning.py), and the copy restored there matches (before:
    # every attempt dropped, exit 3)
    with busy(primary), replay_moves_after_the_locks(replica, monkeypatch) as moved:
        drill = spectral("dr", "drill", "functional", "--content", cwd=work_dir)
    assert drill.returncode == 0, (drill.stdout, drill.stderr)
    assert "PASS" in drill.stdout and "held the source's xmin horizon back for" in drill.stdout
    assert moved, "the snapshot was not taken in this process: replay was left to chance"


@contextlib.contextmanager
def replay_moves_after_the_locks(replica: Cluster, monkeypatch: pytest.MonkeyPatch
                                 ) -> Iterator[list[str]]:
    """Every lock_all on the replica returns once its replay has moved: after the replay LSN
    was read before the snapshot, before the statement that takes it. Yields the LSNs moved
    from."""
    from spectral.verify import locks
    from spectral.waits import wait_until

    real, moved = locks.lock_all, []

    def lock_all(conn: Any, tables: Any, timeout: float) -> None:
        real(conn, tables, timeout)
        if conn.info.port == replica.port:
            start = _replay_lsn(replica)
            wait_until(lambda: _replay_lsn(replica) != start, timeout=60, interval=0.001,
                       what="the replica's replay to move")
            moved.append(start)

    monkeypatch.setattr(locks, "lock_all", lock_all)
    yield moved


@contextlib.contextmanager
def busy(primary: Cluster, clients: int = 4) -> Iterator[None]:
    """pgbench's clients inserting into core.notes for the block as fast as they go, a commit
    each (ids from a sequence outside the protected schema): replay never stands still for
    the round trips between the two reads of the replay LSN."""
    with primary.connect() as conn:
        conn.execute("create sequence if not exists public.busy_ids start 1000")
    script = primary.data_dir.parent / "busy.sql"
    script.write_text("insert into core.notes values (nextval('public.busy_ids'), 'busy');\n")
    script.chmod(0o644)
    writer = subprocess.Popen(
        [primary.bins.path("pgbench"), "-n", "-c", str(clients), "-T", "300", "-f",
         str(script), "-d", primary.conninfo()],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        writer.terminate()
        writer.wait(30)


@pytest.mark.server
def test_a_snapshot_dsn_that_is_no_replica_of_the_source_is_refused(
        work_dir: Path, bins: PgBinaries, make_cluster: ClusterFactory) -> None:
    other = make_cluster()
    with notes_environment(work_dir):
        stranger = replica_of(other, work_dir / "stranger", bins)   # another cluster's replica
        try:
            for dsn, why in ((replica_dsn(other, stranger), "a replica of another cluster"),
                             (other.conninfo(), "is not a replica")):
                (work_dir / "spectral.toml").write_text(TOML + f"snapshot_dsn = '{dsn}'\n")
                for args in (("dr", "drill", "functional"), ("dr", "fingerprint")):
                    refused = spectral(*args, cwd=work_dir)
                    assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
                    assert why in refused.stderr, refused.stderr
        finally:
            stranger.stop(timeout=20)
    log = spectral("dr", "log", "--kind", "drill", "--json", cwd=work_dir)
    assert "functional" not in log.stdout     # refused before anything ran: nothing recorded

