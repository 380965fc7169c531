"""Adversary round, session 10: what it found besides wrong data (test_trust_inplace_rollback),
each with a test that failed before its fix.
- F2: an in-place restore or undo that is done while its ledger entry cannot be appended
  (the ledger torn meanwhile) said only the ledger's error, exit 3: now it says it is done and
  not recorded yet (the entry stays owed until the repair).
- F5: `local down` stopped the server under a running in-place restore (whose rollback then
  started it again): refused, as `local up` is.
- F7: a connection PostgreSQL ended under a command ("AdminShutdown") was an internal error.
- F8: an unreadable owed entry was dropped in silence; an outbox that is not a folder failed
  after the restore was done (FileExistsError): refused before anything changes."""

from __future__ import annotations

import inspect
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from conftest import spectral
from spectral.errors import CouldNotVerify
from spectral.ledger import EntryKind
from spectral.ledger.outbox import Outbox
from test_ledger import Said


def test_a_lost_connection_is_one_line_not_an_internal_error() -> None:
    import psycopg

    from spectral.cli.main import _connection_lost

    said = _connection_lost(psycopg.errors.AdminShutdown(
        "terminating connection due to administrator command"))
    assert said == ("a database connection was lost: terminating connection due to "
                    "administrator command")
    assert _connection_lost(ValueError("x")) is None


def test_a_privilege_the_role_lacks_is_one_line_exit_2() -> None:
    """Session 11's adversary round: `dr salvage --yes` with an attached environment's
    read-only drill role ended "internal error: InsufficientPrivilege", exit 3."""
    import psycopg

    from spectral.cli.main import _denied, run_cli

    said = _denied(psycopg.errors.InsufficientPrivilege("permission denied for table notes"))
    assert said == ("the database role lacks a privilege this needs: permission denied for "
                    "table notes")
    assert _denied(ValueError("x")) is None
    assert "_denied(exc)" in inspect.getsource(run_cli)


def test_an_owed_entry_that_cannot_be_read_is_said_and_the_outbox_is_checked_first(
        tmp_path: Path) -> None:
    from spectral.config.load import load_config
    from spectral.environment import open_environment

    (tmp_path / "spectral.toml").write_text('[environments.e]\nprovider = "local"\n'
                                            'dsn = "host=/nowhere dbname=x"\n')
    said: list[str] = []
    environment = open_environment(load_config(tmp_path / "spectral.toml"), "e",
                                   report=said.append)
    outbox = Outbox(environment.state_dir)
    outbox.owe(Said("undo of the in-place restore to x"))
    broken = outbox.dir / "broken.json"
    broken.write_text('{"key": "b", "kind": ')
    assert environment.record_owed() == 1
    assert any(str(broken) in s and "not recorded" in s for s in said), said
    assert broken.exists()                       # kept for the operator, not dropped
    outbox_file = Outbox(tmp_path / "other")
    outbox_file.dir.parent.mkdir(parents=True)
    outbox_file.dir.write_text("not a folder")
    with pytest.raises(CouldNotVerify, match="not a directory"):
        outbox_file.check()


def test_done_but_not_recorded_is_said_with_the_operation(tmp_path: Path) -> None:
    from spectral.cli.backup_cmds import record_owed
    from spectral.cli.state import AppState
    from spectral.config.load import load_config
    from spectral.environment import open_environment

    (tmp_path / "spectral.toml").write_text('[environments.e]\nprovider = "local"\n'
                                            'dsn = "host=/nowhere dbname=x"\n')
    cfg = load_config(tmp_path / "spectral.toml")
    environment = open_environment(cfg, "e")
    environment.ledger.append(EntryKind.DRILL, "e", {"outcome": "pass"})
    with open(environment.ledger.path, "a") as f:
        f.write('{"seq": 2, "torn')                                      # torn meanwhile
    Outbox(environment.state_dir).owe(Said("in-place restore"))
    err = io.StringIO()

    class St(AppState):
        @property
        def err(self) -> Console:   # type: ignore[override]
            return Console(file=err, width=300)

    record_owed(St(config_path=tmp_path / "spectral.toml", env="e"), "the in-place restore")
    assert "the in-place restore is done but not recorded yet" in err.getvalue(), err.getvalue()
    assert Outbox(environment.state_dir).owed(), "the entry must stay owed"


@pytest.mark.server
def test_local_down_refuses_under_a_running_in_place_restore(work_dir: Path) -> None:
    (work_dir / "spectral.toml").write_text('[environments.s]\nprovider = "local"\n')
    assert spectral("local", "up", cwd=work_dir).returncode == 0
    cluster_dir = work_dir / ".spectral" / "s" / "cluster"
    holder = subprocess.Popen(   # a process in the middle of replacing the data directory
        [sys.executable, "-c", "import sys, time\nfrom pathlib import Path\n"
         "from spectral.providers.local.intent import Journal\n"
         "Journal(Path(sys.argv[1])).begin('restore', data='x')\nprint('begun', flush=True)\n"
         "time.sleep(120)\n", str(cluster_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "begun"
        res = spectral("local", "down", cwd=work_dir)
        assert res.returncode == 2 and "is replacing" in res.stderr, res.stderr
        status = json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)
        assert status["running"], "the server was stopped under the restore"
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        (cluster_dir / "intent.json").unlink(missing_ok=True)
        spectral("local", "down", cwd=work_dir)


def test_an_exit_into_an_environment_spectral_runs_says_how(tmp_path: Path) -> None:
    """F10: `dr exit --to <environment>` for a cluster spectral runs said only that it has no
    dsn; it says how to get one."""
    from spectral.config.load import load_config
    from spectral.errors import UsageError
    from spectral.exit.where import resolve_exit_target

    (tmp_path / "spectral.toml").write_text('[environments.target]\nprovider = "local"\n')
    with pytest.raises(UsageError) as raised:
        resolve_exit_target(load_config(tmp_path / "spectral.toml"), "target")
    assert "spectral --env target local status" in (raised.value.hint or "")
