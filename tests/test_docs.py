"""Docs that cannot drift: every command has --help text and an entry in docs/commands.md, the
README's quick start runs as written, the layout names every module, help shows no Python
types."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.main import get_command

from spectral.cli.app import app

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
COMMANDS_DOC = (ROOT / "docs" / "commands.md").read_text()
DESIGN = (ROOT / "docs" / "design.md").read_text()


def _commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    out = []
    for name, cmd in getattr(group, "commands", {}).items():
        path = (*prefix, name)
        out.append((path, cmd.help or ""))
        out += _commands(cmd, path)
    return out


COMMANDS = _commands(get_command(app))


def test_there_are_commands() -> None:
    assert len(COMMANDS) >= 10
    assert isinstance(app, typer.Typer)


def test_every_command_has_help_text() -> None:
    missing = [" ".join(p) for p, text in COMMANDS if len(text.strip()) < 15]
    assert not missing, f"commands without --help text: {missing}"


def test_every_command_is_in_the_command_reference() -> None:
    leaves = [p for p, _ in COMMANDS if not any(q[:len(p)] == p and q != p for q, _ in COMMANDS)]
    missing = [" ".join(p) for p in leaves
               if not re.search(r"`spectral " + re.escape(" ".join(p)) + r"\b", COMMANDS_DOC)]
    assert not missing, f"commands missing from docs/commands.md: {missing}"


def test_help_shows_no_python_types() -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    for path, _ in COMMANDS:
        out = runner.invoke(app, [*path, "--help"], prog_name="spectral").output
        assert not re.search(r"<(bool|str|int|float|path|file)[^>]*>", out), (path, out)


def test_readme_gives_exactly_two_setup_commands() -> None:
    block = README.split("## Two commands", 1)[1].split("##", 1)[0]
    commands = re.findall(r"^python3 dev\.py \w+$", block, re.M)
    assert commands == ["python3 dev.py demo", "python3 dev.py test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "python3 dev.py test" in ci


def test_the_readme_layout_names_every_module() -> None:
    """The layout section cannot drift: each package and top-level module of src/spectral,
    and each module under providers/, is named there, and nothing it names is missing."""
    layout = DESIGN.split("## Layout", 1)[1].split("```", 2)[1]
    src = Path(__file__).parent.parent / "src" / "spectral"
    expected = {p.name + ("/" if p.is_dir() else "") for p in src.iterdir()
                if not p.name.startswith("__") and (p.is_dir() or p.suffix == ".py")}
    expected |= {p.name for p in (src / "providers").rglob("*.py")
                 if not p.name.startswith("__")}
    named = set(re.findall(r"^\s+([\w.]+/?)\s", layout, re.M))
    assert expected <= named, f"missing from the layout: {sorted(expected - named)}"
    provider_dirs = {p.name + "/" for p in (src / "providers").iterdir() if p.is_dir()
                     and not p.name.startswith("__")}
    ghosts = {n for n in named if n.endswith((".py", "/")) and n not in expected
              and n not in provider_dirs | {"providers/"}}
    assert not ghosts, f"named in the layout but not in the tree: {sorted(ghosts)}"


def test_the_fingerprint_coverage_table_names_real_tests() -> None:
    """Every test the coverage table names exists: a `CHANGES` case or a test function."""
    from test_second_world import CHANGES as SECOND_WORLD
    from test_verify import CHANGES

    doc = (Path(__file__).parent.parent / "docs" / "fingerprint-coverage.md").read_text()
    rows = [r.split("|") for r in doc.splitlines() if r.startswith("| ") and "---" not in r]
    named = {n for r in rows[1:] for n in re.findall(r"`([^`]+)`", r[3])}
    cases = {c[0] for c in CHANGES} | {c[0] for c in SECOND_WORLD}
    tests = "".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py"))
    root = Path(__file__).parent.parent
    unknown = [n for n in named if n not in cases and f"def {n.split('::')[-1]}(" not in tests
               and not (n.endswith(".py") and (root / n).exists())]
    assert not unknown, f"named in docs/fingerprint-coverage.md but not a test: {unknown}"


@pytest.mark.slow
@pytest.mark.server
def test_the_readme_quick_start_runs_as_written(work_dir: Path) -> None:
    """A fresh folder, an empty HOME, the block exactly as the README has it."""
    import os
    import subprocess
    import sys

    block = re.findall(r"```bash\n(.*?)```", README.split("## Quick start", 1)[1], re.S)[0]
    home = work_dir / "home"
    home.mkdir()
    work = work_dir / "qs"
    work.mkdir()
    work.chmod(0o755)
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HOME": str(home), "LC_ALL": "C.UTF-8"}
    try:
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env,
                             capture_output=True, text=True, timeout=600, check=False)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        assert "functional drill of local: PASS" in res.stdout
        assert "recovery stopped before commit of transaction" in res.stdout
        assert (work / "report.html").exists()
        assert "Traceback" not in res.stdout + res.stderr
    finally:
        subprocess.run([str(Path(sys.executable).parent / "spectral"), "local", "down"], cwd=work,
                       env=env, capture_output=True, timeout=120, check=False)


def test_the_configuration_keys_in_the_reference_are_the_models() -> None:
    """docs/commands.md lists every configuration key as the models declare it (each
    provider's and each evidence store's own): regenerate with
    `python -m spectral.config.reference docs/commands.md`."""
    from spectral.config.reference import markdown

    assert markdown() in COMMANDS_DOC
