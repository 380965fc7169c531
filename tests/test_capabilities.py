"""Capabilities are objects (issue 28, item 1): a provider hands out what it can do, or None,
and nothing above `providers/` asks which provider it has. Pure checks, no server."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from spectral.errors import UsageError
from spectral.providers.capabilities import missing, refuse_options
from spectral.providers.local.capabilities import LocalBackupOptions
from spectral.providers.pgbackrest.options import PgBackRestOptions, backup_args

SRC = Path(__file__).resolve().parent.parent / "src" / "spectral"
CONCRETE = ("spectral.providers.local", "spectral.providers.pgbackrest",
            "spectral.providers.supabase")


def _above_providers() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] != "providers")


def test_nothing_above_providers_imports_a_concrete_provider() -> None:
    found = []
    for path in _above_providers():
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(SRC)}:{node.lineno} {n}" for n in names
                      if n.startswith(CONCRETE)]
    assert found == []


def test_nothing_above_providers_asks_a_provider_what_it_is() -> None:
    """No isinstance, hasattr or getattr whose subject is a provider."""
    found = []
    for path in _above_providers():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in ("isinstance", "hasattr", "getattr") and node.args:
                subject = ast.unparse(node.args[0])
                if "provider" in subject or subject in ("p", "generic"):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} {ast.unparse(node)}")
    assert found == []


def test_the_local_provider_takes_full_and_incremental_backups_only() -> None:
    opts = LocalBackupOptions("environment t")
    assert opts.parse({}) == {} and opts.parse({"type": "incr"}) == {"type": "incr"}
    with pytest.raises(UsageError, match="differential backups and --repo are for pgbackrest"):
        opts.parse({"type": "diff"})
    with pytest.raises(UsageError, match="--repo are for pgbackrest"):
        opts.parse({"repo": 2})
    with pytest.raises(UsageError, match="--process-max is for pgbackrest environments"):
        opts.parse({"process_max": 2}, restore=True)
    with pytest.raises(UsageError, match="expected full or incr"):
        opts.parse({"type": "weekly"})
    with pytest.raises(UsageError, match="--type: environment t does not take it"):
        opts.parse({"type": "incr"}, restore=True)


def test_pgbackrest_declares_its_backup_options() -> None:
    opts = PgBackRestOptions("environment p", repositories=2)
    assert set(opts.declared()) == {"type", "repo", "process_max"}
    given = opts.parse({"type": "diff", "repo": 2, "process_max": 4})
    assert backup_args(given) == ["--type=diff", "--repo=2", "--process-max=4"]
    assert backup_args(opts.parse({})) == ["--type=full"]
    assert opts.parse({"process_max": 3}, restore=True) == {"process_max": 3}
    with pytest.raises(UsageError, match="--repo 3: this environment has 2 repositories"):
        opts.parse({"repo": 3})
    with pytest.raises(UsageError, match="expected full, diff or incr"):
        opts.parse({"type": "weekly"})
    with pytest.raises(UsageError, match="--repo: environment p does not take it"):
        opts.parse({"repo": 1}, restore=True)       # a restore reads the backup's own


def test_an_undeclared_option_is_one_line_naming_what_is_taken() -> None:
    with pytest.raises(UsageError) as refused:
        refuse_options({"compress": "zst"}, {"type": "full or incr"}, "environment t")
    assert str(refused.value.args[0]) == \
        "--compress: environment t does not take it (it takes --type)"


class _Lacking:
    kind = "bare"

    def describe(self) -> str:
        return "database x"

    def instead(self, capability: str) -> str:
        return "spectral dr drill functional instead" if capability == "wal_stream" else ""


def test_a_missing_capability_is_one_line_with_what_to_do_instead() -> None:
    line = missing(_Lacking(), "spectral dr wal stream", "wal_stream")   # type: ignore[arg-type]
    assert str(line.args[0]) == ("spectral dr wal stream needs wal stream, which database x "
                                 "(bare) does not offer; spectral dr drill functional instead")
    assert "\n" not in str(line.args[0]) and line.exit_code == 2


def test_option_pairs_reach_the_provider_as_text_and_it_parses_them() -> None:
    from spectral.cli.backup_cmds import given_options

    assert given_options(["process-max=4", "compress=zst"], type="diff", repo=None) == \
        {"type": "diff", "process_max": "4", "compress": "zst"}
    with pytest.raises(UsageError, match="expected KEY=VALUE"):
        given_options(["process_max"])
    with pytest.raises(UsageError, match="--option process_max: given twice"):
        given_options(["process_max=2"], process_max=3)
    opts = PgBackRestOptions("environment p", repositories=2)
    assert opts.parse({"process_max": "4", "repo": "2"}) == {"process_max": 4, "repo": 2}
    with pytest.raises(UsageError, match="--process-max x: expected 1 to 64"):
        opts.parse({"process_max": "x"})
    with pytest.raises(UsageError, match="--compress: environment p does not take it"):
        opts.parse(given_options(["compress=zst"]))


def test_an_option_the_provider_does_not_declare_is_refused_before_anything_runs(
        work_dir: Path) -> None:
    from conftest import _processes_under, spectral

    (work_dir / "spectral.toml").write_text('[environments.plain]\nprovider = "local"\n')
    res = spectral("dr", "backup", "-o", "compress=zst", cwd=work_dir)
    assert res.returncode == 2 and res.stdout == "", res
    assert res.stderr.splitlines()[0] == (
        "spectral: error: --compress: environment plain does not take it (it takes --type)")
    res = spectral("dr", "restore", "--latest", "-o", "process_max=2", cwd=work_dir)
    assert res.returncode == 2 and "pgbackrest environments" in res.stderr, res
    res = spectral("dr", "backup", "--option", "nonsense", cwd=work_dir)
    assert res.returncode == 2 and "expected KEY=VALUE" in res.stderr, res
    assert not (work_dir / ".spectral" / "plain" / "cluster").exists()
    assert _processes_under(work_dir) == []
