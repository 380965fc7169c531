from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from spectral.errors import CommandError
from spectral.runner import run
from spectral.undo import UndoStack
from spectral.waits import WaitTimeout, wait_until


def test_run_captures_output() -> None:
    res = run(["sh", "-c", "echo out; echo err >&2"], timeout=10)
    assert res.stdout == "out\n" and res.stderr == "err\n" and res.returncode == 0


def test_failure_carries_last_stderr_line() -> None:
    with pytest.raises(CommandError) as err:
        run(["sh", "-c", "echo first >&2; echo 'the reason' >&2; exit 3"], timeout=10)
    assert err.value.returncode == 3 and "the reason" in err.value.message


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(CommandError, match="timed out"):
        run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout=1)
    assert time.monotonic() - started < 10
    child = int(pidfile.read_text())
    wait_until(lambda: not Path(f"/proc/{child}").exists()
               or "Z" in Path(f"/proc/{child}/stat").read_text().split(")")[1][:3],
               timeout=5, what="grandchild gone")


def test_missing_program_is_a_command_error() -> None:
    with pytest.raises(CommandError, match=r"cannot execute|failed to execute"):
        run(["/nonexistent/program"], timeout=5)


def test_wait_until_has_a_deadline() -> None:
    with pytest.raises(WaitTimeout, match="never not reached within"):
        wait_until(lambda: False, timeout=0.2, what="never")
    assert wait_until(lambda: 42, timeout=1) == 42


def test_undo_unwinds_in_reverse_even_on_error() -> None:
    done: list[str] = []
    with pytest.raises(RuntimeError), UndoStack() as undo:
        undo.push("a", lambda: done.append("a"))
        undo.push("b", lambda: done.append("b"))
        kept = undo.push("c", lambda: done.append("c"))
        undo.release(kept)
        raise RuntimeError("step failed")
    assert done == ["b", "a"]


def test_undo_continues_after_a_failing_action() -> None:
    done: list[str] = []
    undo = UndoStack()
    undo.push("a", lambda: done.append("a"))
    undo.push("bad", lambda: (_ for _ in ()).throw(OSError("boom")))
    undo.unwind()
    assert done == ["a"] and "bad" in undo.errors[0]
    assert os.getpid() > 0


def test_a_helper_whose_parent_is_already_gone_never_starts(tmp_path: Path) -> None:
    """Found by the lifecycle test: when the tool died between forking a helper and the
    helper's setpriv setting the parent-death signal, the signal never came and the helper
    (a whole pg_basebackup) ran on unguarded. The wrapped program starts only while its parent
    is still the process that spawned it."""
    import subprocess

    from spectral.runner import SETPRIV, die_with_parent

    if SETPRIV is None:
        pytest.skip("no setpriv")
    marker = tmp_path / "ran"
    argv = die_with_parent(["sh", "-c", f"touch {marker}"])
    ours = subprocess.run(argv, check=False)
    assert ours.returncode == 0 and marker.exists()
    marker.unlink()
    orphaned = [str(os.getpid() + 100000) if a == str(os.getpid()) else a for a in argv]
    res = subprocess.run(orphaned, check=False)   # as if the parent were someone else now
    assert res.returncode == 125 and not marker.exists()


def test_a_cancelled_program_is_stopped_and_none_starts_after(tmp_path: Path) -> None:
    """runner.cancelled_by: a restore copying while its plan is made is stopped, its whole
    group, when the plan is refused (local/throwaway.py)."""
    import threading

    from spectral.runner import cancelled_by

    pidfile = tmp_path / "child.pid"
    cancel = threading.Event()
    failed: list[CommandError] = []

    def copy() -> None:
        with cancelled_by(cancel), pytest.raises(CommandError, match="cancelled") as err:
            run(["sh", "-c", f"sleep 600 & echo $! > {pidfile}; wait"], timeout=600)
        failed.append(err.value)
        with cancelled_by(cancel), pytest.raises(CommandError, match="not started"):
            run(["sh", "-c", f"touch {tmp_path / 'ran'}"], timeout=60)

    worker = threading.Thread(target=copy)
    worker.start()
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=30,
               what="the program started")
    cancel.set()
    worker.join(timeout=60)
    assert not worker.is_alive() and failed and not (tmp_path / "ran").exists()
    child = int(pidfile.read_text())
    wait_until(lambda: not Path(f"/proc/{child}").exists()
               or "Z" in Path(f"/proc/{child}/stat").read_text().split(")")[1][:3],
               timeout=5, what="grandchild gone")
    # outside the scope (or in another thread), the same event stops nothing
    assert run(["sh", "-c", "echo ok"], timeout=10).stdout == "ok\n"
