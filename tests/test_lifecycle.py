"""The recovery lifecycle, model-checked: Hypothesis drives a real cluster through random
sequences of writes (some crossing WAL segments), idle stretches, full and incremental backups,
restores to every kind of target, in-place restores and their undo (timelines several deep),
find-damage, expiry, and faults (a deleted or corrupted archive segment, a corrupted backup,
kill -9 of the tool during a backup). A model records what every commit left in the table.

Invariants, checked after every step:
- a restore that succeeds holds exactly the model's rows at its target; a refusal is a
  SpectralError with a reason, and it is allowed only after a fault or for a target the model
  knows is unreachable;
- the live database holds exactly the model's live rows;
- find-damage reports every DELETE on the live lineage with its exact row count;
- nothing is left running but the environment's own server.

Profiles: the CI one (a few short sequences) runs in `python3 dev.py test`; the long one is
`SPECTRAL_LIFECYCLE=long python3 dev.py test tests/test_lifecycle.py` (or `=MINUTES`), and its
tally goes to docs/reliability.md."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from conftest import SPECTRAL, SYSTEM_PG15, _processes_under
from spectral.errors import SpectralError
from spectral.localenv import LocalEnvironment
from spectral.pg.binaries import PgBinaries, find_binaries
from spectral.pg.conn import connect
from spectral.pg.osuser import make_owned_dir
from spectral.providers.base import RecoveryTarget, TargetKind
from spectral.providers.local.provider import LocalProvider

Rows = dict[int, int]
PROFILE = os.environ.get("SPECTRAL_LIFECYCLE", "ci")
TALLY: dict[str, int] = {}


@dataclass(frozen=True)
class Commit:
    xid: int
    lsn: str                   # the WAL position right after the commit
    time: datetime
    rows: Rows                 # the table after this commit
    deleted: int = 0           # rows this transaction deleted
    point: str | None = None   # a restore point created right after it


@dataclass
class Model:
    history: list[Commit] = field(default_factory=list)    # the live lineage, oldest first
    before_restore: list[Commit] | None = None              # what an undo puts back
    faults: int = 0
    first_reachable: int | None = None    # index of the first commit after a usable backup
    wal_from: int = 0                     # index of the first commit whose WAL is archived
    next_id: int = 1

    @property
    def rows(self) -> Rows:
        return dict(self.history[-1].rows) if self.history else {}


def count(name: str) -> None:
    TALLY[name] = TALLY.get(name, 0) + 1


class Lifecycle(RuleBasedStateMachine):
    bins: PgBinaries

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="spectral-lifecycle-", dir="/tmp"))
        self.root.chmod(0o755)
        self.local = LocalEnvironment("local", self.root / ".spectral" / "local", self.bins)
        self.p = LocalProvider(self.local)
        self.model = Model()

    # ---- set-up and teardown ----------------------------------------------------------------
    @initialize()
    def create(self) -> None:
        make_owned_dir(self.root, 0o755)
        (self.root / "spectral.toml").write_text(   # the command line sees this environment
            f'[environments.local]\nprovider = "local"\npg_bin_dir = "{self.bins.bin_dir}"\n')
        self.local.up()
        self.sql("create table m (id int primary key, v int not null, pad text)")
        count("sequences")

    def teardown(self) -> None:
        try:
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
            query = (f"insert into m select g, 0, {pad} from generate_series({ids[0]}, "
                     f"{ids[-1]}) g")
            rows.update({i: 0 for i in ids})
        else:
            chosen = sorted(rows)[:n]
            lo, hi = chosen[0], chosen[-1]
            if kind == "update":
                query = f"update m set v = v + 1, pad = {pad} where id between {lo} and {hi}"
                rows.update({i: rows[i] + 1 for i in chosen})
            else:
                query = f"delete from m where id between {lo} and {hi}"
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
        self.model.history.append(Commit(xid, lsn, when, rows, deleted))
        count(f"write {kind}")

    @rule()
    def restore_point(self) -> None:
        if not self.model.history:
            return
        name = f"p{len(self.model.history)}x{int(time.time() * 1000) % 100000}"
        self.sql(f"select pg_create_restore_point('{name}')")
        last = self.model.history[-1]
        self.model.history[-1] = Commit(last.xid, last.lsn, last.time, last.rows, last.deleted,
                                        name)
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

    @rule()
    @precondition(lambda self: self.model.first_reachable is not None)
    def kill_during_backup(self) -> None:
        proc = subprocess.Popen([SPECTRAL, "dr", "backup"], cwd=self.root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.4)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        time.sleep(0.3)
        left = [p for p in _processes_under(self.root) if "pg_basebackup" in p]
        assert left == [], left
        count("kill -9 during backup")

    @rule(delay=st.floats(0.2, 2.0))
    @precondition(lambda self: self.model.first_reachable is not None)
    def kill_during_restore(self, delay: float) -> None:
        """kill -9 of `spectral dr restore` at any moment: what it left is found (an orphan
        whose owner is gone, or a finished instance) and removed by pid, and nothing of it
        keeps running."""
        proc = subprocess.Popen([SPECTRAL, "dr", "restore", "--latest"], cwd=self.root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for inst_id in {i.id for i in self.p.instances()} | set(self.p.orphans()):
            self.p.teardown(inst_id)
        count("kill -9 during restore")

    # ---- restores ---------------------------------------------------------------------------
    def reachable(self) -> list[int]:
        """Indexes of commits a restore must reach (after the first backup on this lineage)."""
        first = self.model.first_reachable
        return [] if first is None else list(range(first, len(self.model.history)))

    def expected(self, kind: TargetKind, i: int, exclusive: bool) -> Rows:
        h = self.model.history
        if kind is TargetKind.TIME:
            last = max(j for j in range(len(h)) if h[j].time <= h[i].time)
            return h[last].rows
        if exclusive:
            return h[i - 1].rows if i > 0 else {}
        return h[i].rows

    @rule(data=st.data(), kind=st.sampled_from(list(TargetKind)), exclusive=st.booleans())
    @precondition(lambda self: self.model.first_reachable is not None)
    def restore(self, data: st.DataObject, kind: TargetKind, exclusive: bool) -> None:
        candidates = self.reachable()
        if kind is TargetKind.NAME:
            candidates = [i for i in candidates if self.model.history[i].point]
        if kind is not TargetKind.LATEST and not candidates:
            return
        i = data.draw(st.sampled_from(candidates)) if candidates else len(self.model.history) - 1
        c = self.model.history[i] if self.model.history else None
        exclusive = exclusive and kind is TargetKind.XID and i > (self.model.first_reachable or 0)
        if kind is TargetKind.LATEST or c is None:
            target, want = RecoveryTarget(TargetKind.LATEST), self.model.rows
        elif kind is TargetKind.TIME:
            target = RecoveryTarget(kind, c.time.isoformat())
            want = self.expected(kind, i, False)
        elif kind is TargetKind.XID:
            target = RecoveryTarget(kind, str(c.xid), exclusive)
            want = self.expected(kind, i, exclusive)
        elif kind is TargetKind.LSN:
            target, want = RecoveryTarget(kind, c.lsn), c.rows
        else:
            target, want = RecoveryTarget(kind, c.point), c.rows
        try:
            inst = self.p.restore(target, keep=False)
        except SpectralError as exc:
            assert exc.message
            assert self.model.faults, f"{target.describe()} refused without a fault: {exc.message}"
            count("restore refused (after a fault)")
            return
        try:
            with connect(inst.dsn) as conn:
                got = dict(conn.execute("select id, v from m").fetchall())
        finally:
            self.p.teardown(inst.id)
        assert got == want, f"{target.describe()}: restore differs from the model"
        count(f"restore {kind.value}{' exclusive' if exclusive else ''}")

    @rule(data=st.data())
    @precondition(lambda self: len(self.reachable()) > 1)
    def restore_in_place(self, data: st.DataObject) -> None:
        i = data.draw(st.sampled_from(self.reachable()[1:]))
        c = self.model.history[i]
        try:
            self.p.restore_in_place(RecoveryTarget(TargetKind.XID, str(c.xid), exclusive=True),
                                    confirmed=True)
        except SpectralError as exc:
            assert self.model.faults, f"in-place restore refused without a fault: {exc.message}"
            count("in-place restore refused (after a fault)")
            return
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
        self.p.undo_in_place()
        self.model.history = self.model.before_restore
        self.model.before_restore = None
        count("undo")

    # ---- reading the WAL --------------------------------------------------------------------
    @rule()
    def find_damage(self) -> None:
        from spectral.playbooks.damage import find_damage

        deletes = {c.xid: c.deleted for c in self.model.history[self.model.wal_from:]
                   if c.deleted}
        if not deletes:
            return
        with connect(self.local.cluster().conninfo()) as conn:
            found = {d.xid: d.rows for d in find_damage(self.p, conn, "public.m", ops={"delete"})}
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
        kept = [b for b in self.p.backups() if b.id in plan.keep]
        oldest = min((b.stop_time for b in kept), default=None)
        started = min((b.start_time for b in kept), default=None)
        if oldest is not None and started is not None:   # older commits are out of reach now
            later = [i for i, c in enumerate(self.model.history) if c.time > oldest]
            self.model.first_reachable = later[0] if later else len(self.model.history)
            archived = [i for i, c in enumerate(self.model.history) if c.time >= started]
            self.model.wal_from = archived[0] if archived else len(self.model.history)
        count("expire --keep 1")

    @rule(data=st.data(), how=st.sampled_from(["delete", "corrupt"]))
    def damage_archive(self, data: st.DataObject, how: str) -> None:
        segs = sorted(p for p in self.p.repo.archive.glob("0*") if len(p.name) == 24)
        if len(segs) < 3:
            return
        victim = data.draw(st.sampled_from(segs[1:-1]))
        if how == "delete":
            victim.unlink()
        else:
            with open(victim, "r+b") as f:
                f.seek(8192 * 3 + 100)
                f.write(os.urandom(64))
        self.model.faults += 1
        count(f"archive segment {how}d")

    @rule(data=st.data())
    def corrupt_backup(self, data: st.DataObject) -> None:
        fulls = [b for b in self.p.backups() if b.kind.value == "full"]
        if not fulls:
            return
        b = data.draw(st.sampled_from(fulls))
        files = sorted((self.p.repo.backup_dir(b.id) / "base").rglob("*"))
        files = [f for f in files if f.is_file() and f.stat().st_size > 8192]
        if not files:
            return
        with open(files[0], "r+b") as f:
            f.seek(4096)
            f.write(os.urandom(32))
        self.model.faults += 1
        count("backup file corrupted")

    # ---- invariants -------------------------------------------------------------------------
    @invariant()
    def live_database_matches_the_model(self) -> None:
        if not self.local.exists():
            return
        got = dict(self.sql("select id, v from m")) if self.model.history or self.sql(
            "select to_regclass('m')")[0][0] else {}
        assert got == self.model.rows

    @invariant()
    def nothing_else_running(self) -> None:
        data = str(self.local.paths.data_dir)
        left = [p for p in _processes_under(self.root) if data not in p]
        assert left == [], left


def _minutes() -> float:
    return float(PROFILE) if PROFILE.replace(".", "", 1).isdigit() else 30.0


def _run(bins: PgBinaries) -> None:
    TALLY.clear()
    machine = type(f"Lifecycle{bins.major}", (Lifecycle,), {"bins": bins})
    base = settings(deadline=None, print_blob=True, suppress_health_check=list(HealthCheck))
    if PROFILE == "ci":   # a few fixed sequences, the same every run
        run_state_machine_as_test(machine, settings=settings(
            base, max_examples=6, stateful_step_count=14, derandomize=True))
        print(f"\nlifecycle tally (PostgreSQL {bins.major}): {_summary()}")
        return
    deadline = time.monotonic() + 60 * _minutes()
    while time.monotonic() < deadline:   # the long profile: fresh sequences until time is up
        run_state_machine_as_test(machine, settings=settings(
            base, max_examples=3, stateful_step_count=40, derandomize=False))
    print(f"\nlifecycle tally (PostgreSQL {bins.major}): {_summary()}")


def _summary() -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(TALLY.items()))


def test_lifecycle_pg18(bins: PgBinaries) -> None:
    _run(bins)


@pytest.mark.skipif(not (SYSTEM_PG15 / "postgres").exists(), reason="no Debian PostgreSQL 15")
def test_lifecycle_pg15() -> None:
    _run(find_binaries(SYSTEM_PG15))
