"""What a command line imports before it does its work (issue 32: the fixed costs every
process pays). Each check runs in a fresh interpreter and looks at sys.modules: no timing,
only which libraries a path loads. `bench/fixed_costs.py` measures what that costs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Libraries a command loads only when it uses them.
DRIVER = ("psycopg", "psycopg_binary")
MODELS = ("pydantic", "pydantic_core")
SIGNING = ("cryptography",)
CLOUD = ("boto3", "botocore", "httpx", "jinja2", "yaml")
RENDERING = ("rich",)


def _loaded(code: str, cwd: Path) -> set[str]:
    """The top-level packages and spectral modules loaded after running `code`."""
    probe = (f"import io, json, sys\n{code}\n"
             "sys.__stdout__.write(json.dumps(sorted({m.split('.')[0] for m in sys.modules}"
             " | {m for m in sys.modules if m.startswith('spectral.')})))\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def _cli(args: list[str]) -> str:
    """Run the command line in-process with its output swallowed (SystemExit included)."""
    return ("from spectral.cli.main import run_cli\n"
            "sys.stdout = io.StringIO()\n"
            f"code = run_cli({args!r})\n"
            "sys.stdout = sys.__stdout__\n")


def test_help_and_version_load_no_library(tmp_path: Path) -> None:
    for args in (["--help"], ["--version"]):
        loaded = _loaded(_cli(args), tmp_path)
        heavy = loaded & set(DRIVER + MODELS + SIGNING + CLOUD + RENDERING)
        assert not heavy, f"spectral {' '.join(args)} imports {sorted(heavy)}"


def test_a_group_s_help_loads_no_driver(tmp_path: Path) -> None:
    """Below the root, typer (0.29) converts the global options with pydantic: that much a
    subcommand pays; not the driver, the configuration, the ledger or the console."""
    for args in (["dr", "--help"], ["dr", "drill", "--help"], ["dr", "fingerprint", "--help"]):
        loaded = _loaded(_cli(args), tmp_path)
        heavy = loaded & set(DRIVER + SIGNING + CLOUD + RENDERING)
        assert not heavy, f"spectral {' '.join(args)} imports {sorted(heavy)}"
        assert "spectral.config.models" not in loaded and "spectral.ledger.store" not in loaded


def test_the_command_tree_imports_no_library(tmp_path: Path) -> None:
    """Importing the CLI (what every command pays before parsing) loads typer and the
    command modules, nothing they call."""
    loaded = _loaded("import spectral.cli.main\nimport spectral.cli.app\n", tmp_path)
    assert not loaded & set(DRIVER + MODELS + SIGNING + CLOUD + RENDERING), sorted(loaded)


def test_loading_a_configuration_loads_no_driver_signing_or_cloud(tmp_path: Path) -> None:
    """A command reaches its first SQL through the configuration: parsing it needs the models,
    not the ledger's store, its signing library, a cloud SDK or the console; and of the
    backends' settings, only those of the environment used (the others are not built)."""
    (tmp_path / "spectral.toml").write_text(
        'default_environment = "db"\n[environments.db]\nprovider = "dsn"\n'
        'dsn = "host=/nowhere dbname=postgres"\nschemas = ["public"]\n'
        '[environments.local]\nprovider = "local"\n'
        '[environments.sb]\nprovider = "supabase"\nproject_ref = "abc"\n'
        '[environments.arch]\nprovider = "archive"\n'
        '[environments.bar]\nprovider = "barman-cloud"\n'
        '[environments.pgb]\nprovider = "pgbackrest"\n')
    loaded = _loaded("from spectral.config.load import load_config\n"
                     "load_config(None).environment(None)\n", tmp_path)
    assert not loaded & set(SIGNING + CLOUD + RENDERING), sorted(loaded)
    assert "spectral.ledger.store" not in loaded
    settings = {m for m in loaded if m.startswith("spectral.providers.") and
                m.endswith(".settings")}
    assert settings == {"spectral.providers.dsn.settings"}, sorted(settings)


def test_a_database_s_environment_loads_no_provider_protocol(tmp_path: Path) -> None:
    """What `dr fingerprint` and `dr snapshot` reach before their first SQL: the environment
    of a bare DSN and its provider, without the provider protocol's records (backups, windows,
    recovery targets: ~7% of the instructions to the first connect) or the command modules'
    other commands (cli/tree.py makes only the path's)."""
    (tmp_path / "spectral.toml").write_text(
        'default_environment = "db"\n[environments.db]\nprovider = "dsn"\n'
        'dsn = "host=/nowhere dbname=postgres"\nschemas = ["public"]\n')
    loaded = _loaded("from spectral.config.load import load_config\n"
                     "from spectral.environment import open_environment\n"
                     "import spectral.verify.fingerprint\n"
                     "open_environment(load_config(None)).provider\n", tmp_path)
    assert "spectral.providers.base" not in loaded
    assert "spectral.recovery_target" not in loaded


def test_light_modules_stay_light(tmp_path: Path) -> None:
    """A module a command's rendering uses (durations, errors) does not drag in its package's
    heavy siblings through the package's __init__."""
    loaded = _loaded("import spectral.config.durations, spectral.errors, spectral.ledger\n",
                     tmp_path)
    assert not loaded & set(MODELS + SIGNING + DRIVER), sorted(loaded)


def test_documents_and_the_ledger_load_no_driver_or_signing(tmp_path: Path) -> None:
    """A stored fingerprint, the provider protocol and an unsigned ledger are read without the
    database driver or the signing library (`dr status`, `dr log`, a compare of two files)."""
    loaded = _loaded("import spectral.verify.document, spectral.providers.base\n"
                     "import spectral.ledger.store\n", tmp_path)
    assert not loaded & set(DRIVER + SIGNING + CLOUD + RENDERING), sorted(loaded)


def test_alerts_and_a_running_step_s_notes_load_no_http_or_rendering(tmp_path: Path) -> None:
    """Every drill and status asks the alerts what to send (usually nothing): the HTTP client
    is loaded only to post one; the lines a running step reports are plain (a `--json` drill
    never loads rich)."""
    loaded = _loaded("import spectral.alerts.notify\n"
                     "from spectral.cli.state import AppState\n"
                     "AppState().notes.print('drill: a note')\n", tmp_path)
    assert not loaded & set(CLOUD + RENDERING), sorted(loaded)


def test_finding_the_binaries_runs_postgres_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command that opens a cluster asks for the binaries: one `postgres --version`,
    as the server's user, tells both their version and that the server can run them."""
    from spectral.pg import binaries

    real, argvs = binaries.run, []

    def counted(argv: list[str], **kwargs: Any) -> Any:
        argvs.append(argv)
        return real(argv, **kwargs)

    monkeypatch.setattr(binaries, "run", counted)
    binaries.find_binaries.cache_clear()
    try:
        found = binaries.find_binaries()
    finally:
        binaries.find_binaries.cache_clear()
    assert found.major in binaries.SUPPORTED_MAJORS
    version = [str(binaries.embedded_bin_dir() / "postgres"), "--version"]
    staged = found.bin_dir != binaries.embedded_bin_dir()   # the server's user cannot reach it
    assert argvs == [version] * (2 if staged else 1)
