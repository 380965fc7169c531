"""kill -9 of the real command line at every step of an in-place restore, its undo, an expiry
and a salvage (issue 27): the command runs with SPECTRAL_TEST_CRASH_AT=<step> (the process
sends itself SIGKILL there, see src/spectral/providers/local/intent.py), then the next command
(drawn: `local up`, `dr backup`, a rerun) finds what it left and puts it right.

What the journal decides, and so what the model takes:
- an in-place restore is finished once its record (what an undo puts back) is written, and
  rolled back to the live data of before until then;
- an undo is finished once a server ran on the put-back data (it may have begun a timeline),
  and rolled back before (the undo is still due, and works);
- an expiry killed after it rewrote the catalog has removed those backups; the next expiry or
  backup removes their directories;
- a salvage killed at any step is run again: the rows come back exactly once, and the side
  instances it left are listed by `dr instances` and removed.

The invariants of the state machine then hold (the live rows are the model's, nothing runs
but the environment's server), and the undo is due exactly when the model says so."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

import oracle
from conftest import spectral, table_digests
from lifecycle_model import PICK, Commit, Model, T, _pick, count

if TYPE_CHECKING:
    from spectral.providers.local.environment import LocalEnvironment
    from spectral.providers.local.provider import LocalProvider

CRASH_ENV = "SPECTRAL_TEST_CRASH_AT"
RESTORE_STEPS = ["restore:begun", "restore:moved-aside", "restore:materialized",
                 "restore:recovering", "restore:recovered", "restore:committed",
                 "restore:discarded", "restore:recorded"]
RESTORE_COMMITTED = {"restore:committed", "restore:discarded", "restore:recorded"}
UNDO_STEPS = ["undo:begun", "undo:set-aside", "undo:put-back", "undo:recovering",
              "undo:recovered", "undo:committed", "undo:recorded"]
UNDO_FINISHED = {"undo:recovering", "undo:recovered", "undo:committed", "undo:recorded"}
EXPIRE_STEPS = ["expire:catalog-written"]
SALVAGE_STEPS = ["salvage:copy-made", "salvage:written", "salvage:copies-removed"]
# every crash point the lifecycle draws (test_lifecycle checks src/ has no other)
DRAWN = {*RESTORE_STEPS, *UNDO_STEPS, *EXPIRE_STEPS, *SALVAGE_STEPS}
# an exit's steps, in the order it reaches them (test_trust_exit_crash's: the model has no target)
EXIT_STEPS = ["exit:begun", "exit:dumped", "exit:shim-recorded", "exit:shim-written",
              "exit:schemas-recorded", "exit:pre-data", "exit:data", "exit:post-data",
              "exit:sealed", "exit:proven", "exit:finished"]
NOT_DRAWN = {"discard:record-removed", "discard:one-removed",   # test_trust_crash's
             *EXIT_STEPS}
THEN = st.sampled_from(["local up", "dr backup"])   # the next command, which recovers


def crash_points_in(src: Path) -> set[str]:
    """The steps named by `crash_point("...")` calls in the source tree."""
    found: set[str] = set()
    for path in src.rglob("*.py"):
        found |= set(re.findall(r'crash_point\(\s*"([^"]+)"', path.read_text()))
    return found


class Crashes:
    """Mixed into the state machine after it (its methods win): these rules share its root,
    provider and model."""

    root: Path
    p: LocalProvider
    local: LocalEnvironment
    model: Model

    if TYPE_CHECKING:
        def reachable(self) -> list[int]: ...
        def settle_prepared(self) -> None: ...
        def undo_due_when_the_model_says(self) -> None: ...
        def sql(self, query: str) -> list[tuple]: ...  # type: ignore[type-arg]
        def agrees_with_postgresql(self, backup_id: str, target: oracle.Target,
                                   content: dict[str, str], timeline: int | None,
                                   what: str) -> None: ...

    def killed_at(self, step: str, *args: str) -> subprocess.CompletedProcess[str]:
        return spectral(*args, cwd=self.root, env={CRASH_ENV: step}, timeout=900)

    def next_command(self, then: str) -> str:
        """The command after the kill; it must succeed. Its stderr says what it put right."""
        res = spectral(*then.split(), cwd=self.root, timeout=900)
        assert res.returncode == 0, (then, res.returncode, res.stdout[-600:], res.stderr[-600:])
        return res.stderr

    # ---- in-place restore ---------------------------------------------------------------------
    @rule(pick=PICK, step=st.sampled_from(RESTORE_STEPS), then=THEN)
    @precondition(lambda self: len(self.reachable()) > 1)
    def crash_in_place(self, pick: int, step: str, then: str) -> None:
        i = _pick(self.reachable()[1:], pick)
        c = self.model.history[i]
        _, timeline = oracle.live_position(oracle.Source(
            self.p.repo.root, None, self.local.cluster().conninfo(), self.local.database))
        backup = self.backup_for(c.xid)
        res = self.killed_at(step, "dr", "restore", "--in-place", "--yes", "--exclusive",
                             "--target-xid", str(c.xid))
        if res.returncode in (1, 2, 3) and self.model.faults:   # 1: a backup proven damaged
            count("crashed in-place restore refused (after a fault)")
            return
        assert res.returncode == -signal.SIGKILL, (step, res.returncode, res.stderr[-600:])
        said = self.next_command(then)
        committed = step in RESTORE_COMMITTED
        assert ("finished" if committed else "rolled back") in said, (step, then, said)
        self.settle_prepared()
        if committed:
            self.model.before_restore = list(self.model.history)
            self.model.history = self.model.history[:i]
            if backup is not None:
                self.agrees_with_postgresql(
                    backup, oracle.Target("xid", str(c.xid), inclusive=False),
                    table_digests(self.local.cluster().conninfo()), timeline,
                    f"in-place restore to before xid {c.xid}, killed at {step}")
        self.undo_due_when_the_model_says()
        count(f"in-place restore killed at {step}, then {then}")

    def backup_for(self, xid: int) -> str | None:
        """The backup a restore to just before `xid` starts from (the plan spectral makes; the
        oracle then restores it on its own); None when the window refuses the target."""
        from spectral.errors import SpectralError
        from spectral.providers.local.targets import plan
        from spectral.recovery_target import TargetKind, target_of

        self.p.flush_archive()
        target = target_of(TargetKind.XID, str(xid), exclusive=True)
        try:
            return plan(self.p.bins, self.p.repo, target, self.p.window()).chain[-1].id
        except SpectralError:
            return None

    # ---- undo -----------------------------------------------------------------------------------
    @rule(step=st.sampled_from(UNDO_STEPS), then=THEN)
    @precondition(lambda self: self.model.before_restore is not None)
    def crash_undo(self, step: str, then: str) -> None:
        assert self.model.before_restore is not None
        res = self.killed_at(step, "dr", "restore", "--undo", "--yes")
        if res.returncode == 3 and self.model.faults:
            count("crashed undo could not verify (after a fault)")
            self.undo_due_when_the_model_says()
            return
        assert res.returncode == -signal.SIGKILL, (step, res.returncode, res.stderr[-600:])
        said = self.next_command(then)
        finished = step in UNDO_FINISHED
        assert ("finished" if finished else "rolled back") in said, (step, then, said)
        self.settle_prepared()
        if finished:
            self.model.history = self.model.before_restore
            self.model.before_restore = None
        self.undo_due_when_the_model_says()
        count(f"undo killed at {step}, then {then}")

    # ---- expiry ---------------------------------------------------------------------------------
    @rule(then=st.sampled_from(["dr expire --keep 1 --yes", "dr backup"]))
    @precondition(lambda self: self.model.first_reachable is not None)
    def crash_expire(self, then: str) -> None:
        from spectral.errors import SpectralError
        from spectral.providers.local import expire as ex
        from spectral.providers.local.window import lineage

        try:
            plan = ex.plan_expire(self.p.backups(), 1, None, lineage=lineage(self.p.repo))
        except SpectralError as exc:   # the archive too damaged to plan (no segment readable)
            assert self.model.faults, f"expire not planned without a fault: {exc.message}"
            res = self.killed_at(EXPIRE_STEPS[0], "dr", "expire", "--keep", "1", "--yes")
            assert res.returncode == 3, (res.returncode, res.stderr[-600:])   # refused alike
            count("crashed expire refused (after a fault)")
            return
        res = self.killed_at(EXPIRE_STEPS[0], "dr", "expire", "--keep", "1", "--yes")
        base = self.p.repo.base
        if res.returncode == 0:   # nothing to remove: it never reached the step
            assert not plan.remove, (plan.remove, res.stdout[-400:])
            return
        assert res.returncode == -signal.SIGKILL, (res.returncode, res.stderr[-600:])
        listed = {b.id for b in self.p.repo.read()}
        assert listed == set(plan.keep), (listed, plan.keep)
        self.next_command(then)
        dirs = {d.name for d in base.iterdir() if d.is_dir()}
        assert dirs == {b.id for b in self.p.repo.read()}, "backup directories left unlisted"
        self.expired([b for b in self.p.backups() if b.id in plan.keep])
        count(f"expire killed after the catalog, then {then.split(' --')[0]}")

    def expired(self, kept: list) -> None:  # type: ignore[type-arg]
        raise NotImplementedError   # the state machine's

    # ---- salvage --------------------------------------------------------------------------------
    @rule(pick=PICK, step=st.sampled_from(SALVAGE_STEPS))
    @precondition(lambda self: not self.model.faults and any(
        self.model.history[i].deleted for i in self.reachable()[1:]))
    def crash_salvage(self, pick: int, step: str) -> None:
        i = _pick([i for i in self.reachable()[1:] if self.model.history[i].deleted], pick)
        c, before = self.model.history[i], self.model.history[i - 1].rows
        rows = self.model.rows
        back = {k: before[k] for k in before if k not in c.rows and k not in rows}
        args = ("dr", "salvage", "--table", T, "--before-xid", str(c.xid), "--yes")
        res = self.killed_at(step, *args)
        if not back and step != "salvage:copy-made":   # nothing to write: no such step
            assert res.returncode == 0, (step, res.returncode, res.stderr[-600:])
            count("salvage with nothing to put back")
            return
        assert res.returncode == -signal.SIGKILL, (step, res.returncode, res.stderr[-600:])
        if step == "salvage:written":   # the rows are back already, in one transaction
            self.salvaged(rows, back)
        left = sorted(p.name for p in self.p.registry.root.glob("*") if p.is_dir()) \
            if self.p.registry.root.is_dir() else []
        if left:   # a killed salvage's side instances are listed (orphaned), never hidden
            listed = spectral("dr", "instances", cwd=self.root).stdout
            assert all(name in listed for name in left), (left, listed)
        again = spectral(*args, cwd=self.root, timeout=900)
        assert again.returncode == 0, (again.returncode, again.stderr[-600:])
        if step != "salvage:written":
            self.salvaged(rows, back)
        assert self.p.orphans() == [], self.p.orphans()
        count(f"salvage killed at {step}, then run again")

    def salvaged(self, rows: dict[int, int], back: dict[int, int]) -> None:
        if not back:
            return
        rows.update(back)
        xid, when = self.sql("select xid::text, timestamp from pg_last_committed_xact()")[0]
        lsn = self.sql("select pg_current_wal_lsn()::text")[0][0]
        self.model.history.append(Commit(int(xid), lsn, when, rows, kind="salvage"))
