"""How a command line's process ends (cli/main.py `leave`): without the interpreter's
teardown, but with everything an exit owes done first — the exit handlers, the output, the
exit code — and the interpreter's own exit while a thread still runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
                          check=False)


def test_leaving_runs_the_exit_handlers_flushes_and_keeps_the_code(tmp_path: Path) -> None:
    done = _run("import atexit, logging, sys, tempfile\n"
                "from spectral.cli.main import leave\n"
                "kept = tempfile.TemporaryDirectory(dir='.')\n"
                "open('where', 'w').write(kept.name)\n"
                "atexit.register(lambda: sys.stdout.write('handler ran'))\n"
                "logging.getLogger('x').warning('logged')\n"
                "sys.stdout.write('buffered, no newline; ')\n"
                "sys.stderr.write('on stderr')\n"
                "leave(3)\n", tmp_path)
    assert done.returncode == 3
    assert done.stdout == "buffered, no newline; handler ran"
    assert "logged" in done.stderr and done.stderr.endswith("on stderr")
    assert not Path((tmp_path / "where").read_text()).exists()   # its finalizer ran


def test_leaving_waits_for_a_running_thread(tmp_path: Path) -> None:
    done = _run("import pathlib, threading, time\n"
                "from spectral.cli.main import leave\n"
                "def late():\n"
                "    time.sleep(0.3)\n"
                "    pathlib.Path('written').write_text('by the thread')\n"
                "threading.Thread(target=late).start()\n"
                "leave(1)\n", tmp_path)
    assert done.returncode == 1, done.stderr
    assert (tmp_path / "written").read_text() == "by the thread"


def test_a_reader_that_leaves_keeps_the_commands_own_exit_code(tmp_path: Path) -> None:
    """`spectral dr log | head -1`: click ended such a command with exit 1 (a failed check)
    once its output could not be written; the unread output is dropped, the code is the
    command's own, and nothing is said on stderr."""
    import os

    from conftest import SPECTRAL

    for args, code in ((["dr", "playbook", "list"], 0), (["--json", "dr", "playbook", "list"], 0),
                       (["--help"], 0), (["dr", "no-such-command"], 2)):
        read, write = os.pipe()
        os.close(read)             # the reader is gone before the first line
        try:
            done = subprocess.run([SPECTRAL, *args], cwd=tmp_path, stdout=write,
                                  stderr=subprocess.PIPE, text=True, timeout=60, check=False)
        finally:
            os.close(write)
        assert done.returncode == code, (args, done.stderr)
        assert code or done.stderr == "", (args, done.stderr)
