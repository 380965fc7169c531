"""The recovery lifecycle, model-checked: Hypothesis drives a real cluster through random
sequences of writes (some crossing WAL segments), idle stretches, full and incremental backups,
restores to every kind of target, in-place restores and their undo (timelines several deep),
find-damage, expiry, and faults (a deleted or corrupted archive segment, a corrupted backup,
kill -9 of the tool during a backup; lifecycle_faults.py and lifecycle_crashes.py: damaged WAL,
two-phase commits, a crashed source, and kill -9 of the command line at every step of an
in-place restore, undo, expiry and salvage). A model records what every commit left in the
table.

Invariants, checked after every step:
- a restore that succeeds holds exactly the model's rows at its target; a refusal is a
  SpectralError with a reason, and it is allowed only after a fault or for a target the model
  knows is unreachable;
- the live database holds exactly the model's live rows, and an undo is due exactly when
  the model says so;
- find-damage reports every DELETE on the live lineage with its exact row count;
- nothing is left running but the environment's own server.

Profiles: the CI one (a few short sequences, without the crash rules, plus the fixed SCRIPT,
which kills an undo, an in-place restore and an expiry once each) runs in `python3 dev.py
test`; the long one (every rule) is
`SPECTRAL_LIFECYCLE=long python3 dev.py test tests/test_lifecycle.py` (or `=MINUTES`), and its
tally goes to docs/reliability.md."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import oracle
import scratch
from conftest import SYSTEM_PG15, _processes_under, table_digests
from lifecycle_crashes import DRAWN, NOT_DRAWN, Crashes, crash_points_in
from lifecycle_faults import PREPARED, Faults
from lifecycle_model import (
    INVARIANTS,
    PICK,
    PROFILE,
    SCRIPT,
    STREAM_EXIT,
    TALLY,
    Commit,
    Model,
    Rows,
    T,
    _minutes,
    _pick,
    _summary,
    count,
)
from lifecycle_rules import Processes
from spectral.errors import SpectralError
from spectral.pg.binaries import PgBinaries, find_binaries
from spectral.pg.conn import connect
from spectral.pg.osuser import make_owned_dir
from spectral.providers.base import Backup
from spectral.providers.local.environment import LocalEnvironment
from spectral.providers.local.provider import LocalProvider
from spectral.recovery_target import (
    LatestTarget,
    RecoveryTarget,
    TargetKind,
    TimeTarget,
    target_of,
)


class Lifecycle(Processes, Faults, RuleBasedStateMachine):
    bins: PgBinaries

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="spectral-lifecycle-", dir=scratch.root()))
        self.root.chmod(0o755)
        self.local = LocalEnvironment("local", self.root / ".spectral" / "local", self.bins)
        self.p = LocalProvider(self.local)
        self.model = Model()
        self.stream: subprocess.Popen[bytes] | None = None

    # ---- set-up and teardown ----------------------------------------------------------------
    @initialize()
    def create(self) -> None:
        from spectral.refdb.migrate import migrate

        make_owned_dir(self.root, 0o755)
        (self.root / "spectral.toml").write_text(   # the command line sees this environment
            f'[environments.local]\nprovider = "local"\nposture = "pitr"\n'
            f'pg_bin_dir = "{self.bins.bin_dir}"\n\n[environments.local.contract]\n'
            f'tables = ["core.orgs", "core.users", "core.partners"]\n'
            f'referenced_by = ["worlds", "platform"]\n')
        self.local.up()
        with connect(self.local.cluster().conninfo()) as conn:
            migrate(conn)                   # the reference schemas: drills check their contract
            conn.execute(f"alter system set max_prepared_transactions = {PREPARED}")
        self.local.down()                   # two-phase commits need a restart
        self.local.up()
        self.sql(f"create table {T} (id int primary key, v int not null, pad text)")
        count("sequences")

    def teardown(self) -> None:
        try:
            if self.stream is not None and self.stream.poll() is None:
                self.stream.terminate()
                self.stream.wait(timeout=STREAM_EXIT)
            for inst in self.p.instances():
                self.p.teardown(inst.id)
            self.local.down()
            left = _processes_under(self.root)
            assert left == [], left
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def sql(self, query: str) -> list[tuple]:  # type: ignore[type-arg]
        with connect(self.local.cluster().conninfo()) as conn:
            cur = conn.execute(query)
            return cur.fetchall() if cur.description else []

    def restore_after_crash(self) -> None:
        """The latest point of a crashed source: its last commit, or a refusal."""
        try:
            inst = self.p.restore(LatestTarget(), keep=False)
        except SpectralError as exc:
            assert exc.message
            count("restore after a crash refused")
            return
        try:
            with connect(inst.dsn) as conn:
                got = dict(conn.execute(f"select id, v from {T}").fetchall())
            content = table_digests(inst.dsn)
        finally:
            self.p.teardown(inst.id)
        assert got == self.model.rows, "the latest point of a crashed source lost commits"
        self.agrees_with_postgresql(inst.backup_id, oracle.Target("latest"), content, None,
                                    "the latest point of a crashed source")
        count("restore after a crash")

    # ---- writes -----------------------------------------------------------------------------
    @rule(kind=st.sampled_from(["insert", "update", "delete"]), n=st.integers(1, 40),
          large=st.booleans())
    def write(self, kind: str, n: int, large: bool) -> None:
        rows = self.model.rows
        pad = "repeat('w', 4000)" if large else "null"
        deleted = 0
        if kind == "insert" or not rows:
            ids = list(range(self.model.next_id, self.model.next_id + (n * 25 if large else n)))
            self.model.next_id += len(ids)
            query = (f"insert into {T} select g, 0, {pad} from generate_series({ids[0]}, "
                     f"{ids[-1]}) g")
            kind = "insert"
            rows.update({i: 0 for i in ids})
        else:
            chosen = sorted(rows)[:n]
            lo, hi = chosen[0], chosen[-1]
            if kind == "update":
                query = f"update {T} set v = v + 1, pad = {pad} where id between {lo} and {hi}"
                rows.update({i: rows[i] + 1 for i in chosen})
            else:
                query = f"delete from {T} where id between {lo} and {hi}"
                deleted = len(chosen)
                for i in chosen:
                    del rows[i]
        with connect(self.local.cluster().conninfo(), autocommit=False) as conn:
            conn.execute(query)
            xid = int(conn.execute("select txid_current()").fetchone()[0])  # type: ignore[index]
            conn.commit()
            lsn, when = conn.execute(
                f"select pg_current_wal_lsn()::text, pg_xact_commit_timestamp('{xid}'::xid)"
            ).fetchone()  # type: ignore[misc]
        self.model.history.append(Commit(xid, lsn, when, rows, deleted, kind=kind))
        count(f"write {kind}")

    @rule()
    def restore_point(self) -> None:
        if not self.model.history:
            return
        name = f"p{len(self.model.history)}x{int(time.time() * 1000) % 100000}"
        self.sql(f"select pg_create_restore_point('{name}')")
        last = self.model.history[-1]
        self.model.history[-1] = Commit(last.xid, last.lsn, last.time, last.rows, last.deleted,
                                        name, last.kind)
        count("restore point")

    @rule(segments=st.integers(1, 3))
    def idle(self, segments: int) -> None:
        for _ in range(segments):
            self.sql("checkpoint")
            self.p.flush_archive()
        count("idle segments")

    # ---- backups ----------------------------------------------------------------------------
    @rule(incremental=st.booleans())
    def backup(self, incremental: bool) -> None:
        if incremental and self.bins.major < 17:
            incremental = False
        try:
            self.p.backup(incremental=incremental)
        except SpectralError as exc:
            assert incremental and "full backup first" in (exc.hint or exc.message), exc.message
            return
        if self.model.first_reachable is None:
            self.model.first_reachable = len(self.model.history)
        count("backup incremental" if incremental else "backup full")

    # ---- restores ---------------------------------------------------------------------------
    def reachable(self) -> list[int]:
        """Indexes of commits a restore must reach (after the first backup on this lineage)."""
        first = self.model.first_reachable
        return [] if first is None else list(range(first, len(self.model.history)))

    def expected(self, kind: TargetKind, i: int, exclusive: bool) -> Rows:
        h = self.model.history
        if kind is TargetKind.TIME:   # exclusive: before the first commit at or after T
            before = [j for j in range(len(h)) if h[j].time < h[i].time or
                      (not exclusive and h[j].time == h[i].time)]
            return h[max(before)].rows if before else {}
        if exclusive:
            return h[i - 1].rows if i > 0 else {}
        return h[i].rows

    @rule(pick=PICK, kind=st.sampled_from(list(TargetKind)), exclusive=st.booleans())
    @precondition(lambda self: self.model.first_reachable is not None)
    def restore(self, pick: int, kind: TargetKind, exclusive: bool) -> None:
        candidates = self.reachable()
        if kind is TargetKind.NAME:
            candidates = [i for i in candidates if self.model.history[i].point]
        if kind is not TargetKind.LATEST and not candidates:
            return
        i = candidates[pick % len(candidates)] if candidates else len(self.model.history) - 1
        c = self.model.history[i] if self.model.history else None
        exclusive = exclusive and kind in (TargetKind.XID, TargetKind.TIME) and \
            i > (self.model.first_reachable or 0)
        if kind is TargetKind.LATEST or c is None:
            target, want = LatestTarget(), self.model.rows
        elif kind is TargetKind.TIME:
            target = target_of(kind, c.time.isoformat(), exclusive)
            want = self.expected(kind, i, exclusive)
        elif kind is TargetKind.XID:
            target = target_of(kind, str(c.xid), exclusive)
            want = self.expected(kind, i, exclusive)
        elif kind is TargetKind.LSN:
            # c.lsn is where WAL was written to right after the commit: the records before it
            # hold the commit and nothing later (exclusive). An inclusive LSN target replays
            # the record that starts there too, which may be the next commit (found on a long
            # run: a COMMIT PREPARED right after a plain commit), so it is not modelled here
            target, want = target_of(kind, c.lsn, True), c.rows
        else:
            target, want = target_of(kind, c.point), c.rows
        try:
            inst = self.p.restore(target, keep=False)
        except SpectralError as exc:
            assert exc.message
            assert self.model.faults, f"{target.describe()} refused without a fault: {exc.message}"
            count("restore refused (after a fault)")
            return
        try:
            with connect(inst.dsn) as conn:
                got = dict(conn.execute(f"select id, v from {T}").fetchall())
            content = table_digests(inst.dsn)
        finally:
            self.p.teardown(inst.id)
        assert got == want, f"{target.describe()}: restore differs from the model"
        self.agrees_with_postgresql(inst.backup_id, _oracle_target(target), content, None,
                                    target.describe())
        count(f"restore {kind.value}{' exclusive' if exclusive else ''}")

    def agrees_with_postgresql(self, backup_id: str, target: oracle.Target,
                               content: dict[str, str], timeline: int | None, what: str) -> None:
        """The oracle: PostgreSQL's own recovery of the same target from the same backup and
        the complete WAL must reach it and hold the same rows in every table."""
        source = oracle.Source(self.p.repo.root, self.local.paths.data_dir,
                               self.local.cluster().conninfo(), self.local.database,
                               flushed=self.crashed_at)
        out = oracle.restore(self.bins.bin_dir, source, backup_id, target, timeline,
                             table_digests)
        assert out.reached, f"{what}: spectral restored it, PostgreSQL could not: {out.how}"
        diff = {t for t in set(content) | set(out.digests or {})
                if content.get(t) != (out.digests or {}).get(t)}
        assert not diff, f"{what}: spectral's restore differs from PostgreSQL's in {diff}"
        count("oracle agreed")

    @rule(pick=PICK)
    @precondition(lambda self: len(self.reachable()) > 1)
    def restore_in_place(self, pick: int) -> None:
        i = _pick(self.reachable()[1:], pick)
        c = self.model.history[i]
        _, timeline = oracle.live_position(oracle.Source(
            self.p.repo.root, None, self.local.cluster().conninfo(), self.local.database))
        try:
            done = self.p.restore_in_place(target_of(TargetKind.XID, str(c.xid), exclusive=True),
                                           confirmed=True)
        except SpectralError as exc:
            assert self.model.faults, f"in-place restore refused without a fault: {exc.message}"
            count("in-place restore refused (after a fault)")
            return
        self.settle_prepared()
        backup = done["backup"] if isinstance(done, dict) else done.backup
        self.agrees_with_postgresql(backup, oracle.Target("xid", str(c.xid), inclusive=False),
                                    table_digests(self.local.cluster().conninfo()), timeline,
                                    f"in-place restore to before xid {c.xid}")
        self.model.before_restore = list(self.model.history)
        self.model.history = self.model.history[:i]
        count("in-place restore")

    @rule()
    def undo(self) -> None:
        if self.model.before_restore is None:
            with pytest.raises(SpectralError, match="no in-place restore to undo"):
                self.p.undo_in_place()
            count("undo refused (nothing to undo)")
            return
        try:
            self.p.undo_in_place()
        except SpectralError as exc:   # a lost history file: a new timeline would reuse its id
            assert self.model.faults and "history" in exc.message, exc.message
            count("undo refused (after a fault)")
            return
        self.settle_prepared()
        self.model.history = self.model.before_restore
        self.model.before_restore = None
        count("undo")

    # ---- salvage ------------------------------------------------------------------------------
    @rule(pick=PICK)
    @precondition(lambda self: not self.model.faults and any(
        self.model.history[i].deleted for i in self.reachable()[1:]))
    def salvage(self, pick: int) -> None:
        from spectral.playbooks.salvage import salvage

        i = _pick([i for i in self.reachable()[1:] if self.model.history[i].deleted], pick)
        c, before = self.model.history[i], self.model.history[i - 1].rows
        result = salvage(self.p, self.local.cluster().conninfo(), T, c.xid)
        rows = self.model.rows
        back = {k: before[k] for k in before if k not in c.rows and k not in rows}
        assert {r["id"] for r in result.restored_rows} == set(back)
        if back:
            rows.update(back)
            xid, when = self.sql("select xid::text, timestamp from pg_last_committed_xact()")[0]
            lsn = self.sql("select pg_current_wal_lsn()::text")[0][0]
            self.model.history.append(Commit(int(xid), lsn, when, rows, kind="salvage"))
        count("salvage")

    # ---- reading the WAL --------------------------------------------------------------------
    @rule()
    def find_damage(self) -> None:
        from spectral.playbooks.damage import find_damage

        deletes = {c.xid: c.deleted for c in self.model.history[self.model.wal_from:]
                   if c.deleted}
        if not deletes:
            return
        with connect(self.local.cluster().conninfo()) as conn:
            try:
                found = {d.xid: d.rows
                         for d in find_damage(self.p.wal_archive(), conn, T, ops={"delete"})}
            except SpectralError as exc:   # WAL it cannot read: said, never a short answer
                assert self.model.faults, exc.message
                assert "segment" in exc.message or "history" in exc.message, exc.message
                count("find-damage refused (after a fault)")
                return
        if not self.model.faults:
            assert {x: found.get(x) for x in deletes} == deletes
        assert set(found) <= {c.xid for c in self.model.history}   # nothing rewound
        count("find-damage")

    # ---- retention and faults ---------------------------------------------------------------
    @rule()
    @precondition(lambda self: self.model.first_reachable is not None)
    def expire(self) -> None:
        from spectral.providers.local import expire as ex
        from spectral.providers.local.window import lineage

        fulls = [b for b in self.p.backups() if b.kind.value == "full"]
        if len(fulls) < 2:
            return
        plan = ex.plan_expire(self.p.backups(), 1, None, lineage=lineage(self.p.repo))
        plan.wal_remove = ex.wal_to_remove(self.p.repo, plan.oldest_kept_start_lsn)
        ex.apply(self.p.repo, plan)
        self.expired([b for b in self.p.backups() if b.id in plan.keep])
        count("expire --keep 1")

    def expired(self, kept: list[Backup]) -> None:
        """The model after an expiry that kept `kept`: older commits are out of reach."""
        oldest = min((b.stop_time for b in kept), default=None)
        started = min((b.start_time for b in kept), default=None)
        if oldest is not None and started is not None:   # older commits are out of reach now
            later = [i for i, c in enumerate(self.model.history) if c.time > oldest]
            self.model.first_reachable = later[0] if later else len(self.model.history)
            archived = [i for i, c in enumerate(self.model.history) if c.time >= started]
            self.model.wal_from = archived[0] if archived else len(self.model.history)

    # ---- invariants -------------------------------------------------------------------------
    @invariant()
    def live_database_matches_the_model(self) -> None:
        if not self.local.exists():
            return
        assert dict(self.sql(f"select id, v from {T}")) == self.model.rows

    @invariant()
    def undo_due_when_the_model_says(self) -> None:
        due = self.p.in_place.record() is not None
        assert due == (self.model.before_restore is not None), \
            f"an undo is {'' if due else 'not '}due, the model says otherwise"

    @invariant()
    def nothing_else_running(self) -> None:
        data = str(self.local.paths.data_dir)
        streaming = self.stream is not None and self.stream.poll() is None
        left = [p for p in _processes_under(self.root) if data not in p
                and not (streaming and "pg_receivewal" in p)]
        assert left == [], left

    @invariant()
    def ledger_verifies(self) -> None:
        from spectral.confirm import AssumeYes
        from spectral.ledger import Ledger

        ledger = Ledger(self.local.paths.state_dir / "evidence")
        if ledger.verify() and ledger.torn_tail() is not None:   # a kill -9 mid-append
            ledger.repair(AssumeYes(), "local")
            count("torn ledger line repaired")
        assert ledger.verify() == []


def _oracle_target(target: RecoveryTarget) -> oracle.Target:
    """The same target in PostgreSQL's own settings, written by the test, not by spectral."""
    if isinstance(target, TimeTarget):
        return oracle.time_target(target.at, not target.exclusive)
    if target.kind is TargetKind.LATEST:
        return oracle.Target("latest")
    assert target.value is not None
    return oracle.Target(target.kind.value, target.value, not target.exclusive)


def _machine(bins: PgBinaries, crashes: bool) -> type[Lifecycle]:
    """The state machine for these binaries; with `crashes`, it also draws kill -9 of the
    command line at every step of an in-place restore, undo, expiry and salvage (the long
    profile and the script; CI's random sequences stay as they were, and as cheap)."""
    bases = (Lifecycle, Crashes) if crashes else (Lifecycle,)
    return type(f"Lifecycle{bins.major}", bases, {"bins": bins})


def _run(bins: PgBinaries) -> None:
    TALLY.clear()
    machine = _machine(bins, crashes=PROFILE != "ci")
    base = settings(deadline=None, print_blob=True, suppress_health_check=list(HealthCheck))
    if PROFILE == "ci":   # a few fixed sequences, the same every run
        run_state_machine_as_test(machine, settings=settings(
            base, max_examples=4, stateful_step_count=18, derandomize=True), _min_steps=14)
        print(f"\nlifecycle tally (PostgreSQL {bins.major}): {_summary()}")
        return
    deadline = time.monotonic() + 60 * _minutes()
    try:
        while time.monotonic() < deadline:   # the long profile: fresh sequences until time is up
            # no shrinking and no example database: a sequence replayed on real clusters does
            # not fail the same way twice (timing), and shrinking then ends as "Flaky", hiding
            # the failure; the sequence that failed is printed whole instead
            run_state_machine_as_test(machine, settings=settings(
                base, max_examples=3, stateful_step_count=40, derandomize=False, database=None,
                phases=(Phase.explicit, Phase.generate)), _min_steps=20)
    finally:   # what ran, also when a sequence failed
        print(f"\nlifecycle tally (PostgreSQL {bins.major}): {_summary()}")


def _script(bins: PgBinaries) -> None:
    machine = _machine(bins, crashes=True)()
    try:
        machine.create()
        for step, (name, args) in enumerate(SCRIPT):
            if name == "backup" and args["incremental"] and bins.major < 17:
                args = {"incremental": False}
            try:
                getattr(machine, name)(**args)
                for check in INVARIANTS:
                    getattr(machine, check)()
            except BaseException as exc:
                log = machine.local.paths.log_file
                tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
                raise AssertionError(f"step {step} {name}({args}): {exc}\n" + "\n".join(tail)
                                     ) from exc
    finally:
        machine.teardown()


def test_the_lifecycle_draws_every_crash_point() -> None:
    """Every `crash_point` in src/ is a step the lifecycle kills at (or test_trust_crash's and
    test_trust_exit_crash's)."""
    src = Path(__file__).resolve().parent.parent / "src" / "spectral"
    assert crash_points_in(src) == DRAWN | NOT_DRAWN


@pytest.mark.slow
@pytest.mark.server
def test_lifecycle_script_pg18(bins: PgBinaries) -> None:
    _script(bins)


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.skipif(not (SYSTEM_PG15 / "postgres").exists(), reason="no Debian PostgreSQL 15")
def test_lifecycle_script_pg15() -> None:
    _script(find_binaries(SYSTEM_PG15))


@pytest.mark.slow
@pytest.mark.server
def test_lifecycle_pg18(bins: PgBinaries) -> None:
    _run(bins)


@pytest.mark.slow
@pytest.mark.server
@pytest.mark.skipif(not (SYSTEM_PG15 / "postgres").exists(), reason="no Debian PostgreSQL 15")
def test_lifecycle_pg15() -> None:
    _run(find_binaries(SYSTEM_PG15))
