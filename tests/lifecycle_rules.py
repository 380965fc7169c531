"""The lifecycle's rules that act from outside the library: the real command line killed at
any moment (backup, restore, drill), two drills at once, the supervised WAL stream, and
damage done to the archive and the backups (faults the model counts)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from conftest import SPECTRAL, _processes_under
from lifecycle_model import PICK, STREAM_EXIT, Model, T, _pick, _settle, count

if TYPE_CHECKING:
    from spectral.providers.local.provider import LocalProvider


class Processes:
    """Mixed into the state machine: these rules share its root, provider and model."""

    root: Path
    p: LocalProvider
    model: Model
    stream: subprocess.Popen[bytes] | None

    def reachable(self) -> list[int]:
        raise NotImplementedError   # the state machine's

    settle_prepared: Callable[[], None]   # lifecycle_faults.Faults

    @rule()
    @precondition(lambda self: self.model.first_reachable is not None)
    def kill_during_backup(self) -> None:
        proc = subprocess.Popen([SPECTRAL, "dr", "backup"], cwd=self.root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.4)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # its helpers die with it (a process in an fsync takes the signal when the call ends)
        left = _settle(lambda: [p for p in _processes_under(self.root) if "pg_basebackup" in p])
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


    def cli(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([SPECTRAL, *args], cwd=self.root, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)


    def drill_codes(self) -> set[int]:
        return {0, 3} if self.model.faults else {0}

    def drill_passed(self, code: int, out: str) -> bool:
        """0, or 3 after a fault; or 1 after a fault when the one failing check is the RPO:
        a gap in the archive holds the recovery point back, and the longer the run the
        further (a finding the drill must report, not a defect); or the backup's files, which
        the corrupted-backup fault damaged (proven damaged: a FAIL)."""
        if code in self.drill_codes():
            return True
        failing = [ln for ln in out.splitlines() if "│ fail" in ln]
        return code == 1 and bool(self.model.faults) and bool(failing) and \
            all("RPO within target" in ln or "backup matches its manifest" in ln
                for ln in failing)


    @rule(together=st.integers(1, 2))
    @precondition(lambda self: self.model.first_reachable is not None)
    def drill(self, together: int) -> None:
        """One drill, or two at once (the second waits for the first)."""
        runs = [self.cli("dr", "drill", "functional") for _ in range(together)]
        outs = [r.communicate(timeout=900) for r in runs]
        codes = [r.returncode for r in runs]
        assert all(self.drill_passed(c, o) for c, (o, _e) in zip(codes, outs, strict=True)), \
            (codes, [(o[-600:], e[-400:]) for o, e in outs])
        count("two drills at once" if together == 2 else "drill")


    @rule(delay=st.floats(0.2, 3.0))
    @precondition(lambda self: self.model.first_reachable is not None)
    def kill_during_drill(self, delay: float) -> None:
        proc = self.cli("dr", "drill", "functional")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        for inst_id in self.p.orphans():   # what the next drill removes first
            self.p.teardown(inst_id)
        count("kill -9 during drill")


    @rule()
    def stream_start(self) -> None:
        if self.stream is not None and self.stream.poll() is None:
            return
        self.stream = subprocess.Popen([SPECTRAL, "dr", "wal", "stream", "--seconds", "900"],
                                       cwd=self.root, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        count("stream started")


    @rule(kill=st.booleans())
    def stream_stop(self, kill: bool) -> None:
        if self.stream is None or self.stream.poll() is not None:
            return
        self.stream.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.stream.wait(timeout=STREAM_EXIT)
        self.stream = None
        left = _settle(lambda: [p for p in _processes_under(self.root) if "pg_receivewal" in p])
        assert left == [], left   # its pg_receivewal dies with it (parent-death signal)
        count("stream killed" if kill else "stream stopped")

    @rule(pick=PICK, how=st.sampled_from(["delete", "corrupt"]))
    def damage_archive(self, pick: int, how: str) -> None:
        segs = sorted(p for p in self.p.repo.archive.glob("0*") if len(p.name) == 24)
        if len(segs) < 3:
            return
        victim = _pick(segs[1:-1], pick)
        if how == "delete":
            victim.unlink()
        else:
            with open(victim, "r+b") as f:
                f.seek(8192 * 3 + 100)
                f.write(os.urandom(64))
        self.model.faults += 1
        count(f"archive segment {how}d".replace("corruptd", "corrupted"))

    @rule(pick=PICK)
    def corrupt_backup(self, pick: int) -> None:
        fulls = [b for b in self.p.backups() if b.kind.value == "full"]
        if not fulls:
            return
        b = _pick(fulls, pick)
        files = sorted((self.p.repo.backup_dir(b.id) / "base").rglob("*"))
        files = [f for f in files if f.is_file() and f.stat().st_size > 8192]
        if not files:
            return
        with open(files[0], "r+b") as f:
            f.seek(4096)
            f.write(os.urandom(32))
        self.model.faults += 1
        count("backup file corrupted")

    @rule()
    @precondition(lambda self: any(self.model.history[i].kind in ("update", "delete")
                                   for i in self.reachable()[1:]))
    def playbook_self_inflicted(self) -> None:
        """The self-inflicted playbook rewinds to just before the newest DELETE or UPDATE."""
        res = self.cli("dr", "playbook", "run", "self-inflicted", "--table", T, "--yes")
        out, err = res.communicate(timeout=900)
        if res.returncode != 0:
            assert self.model.faults, (res.returncode, out[-400:], err[-400:])
            count("playbook refused (after a fault)")
            return
        self.settle_prepared()
        i = max(j for j, c in enumerate(self.model.history) if c.kind in ("update", "delete"))
        self.model.before_restore = list(self.model.history)
        self.model.history = self.model.history[:i]
        count("playbook self-inflicted")
