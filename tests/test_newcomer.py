"""What a new user meets first: errors as one JSON object with --json, every configuration
problem at once, whole lines in a log, a status that says what to run first, an empty export
that says so."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import spectral


def test_json_errors_are_one_object_on_stderr(tmp_path: Path) -> None:
    res = spectral("dr", "restore", "--target-xid", "abc", "--json", cwd=tmp_path)
    assert res.returncode == 2
    error = json.loads(res.stderr.strip())
    assert error["exit_code"] == 2 and "transaction id" in error["error"]
    assert res.stdout == ""


def test_every_configuration_problem_is_listed_at_once(tmp_path: Path) -> None:
    (tmp_path / "spectral.toml").write_text(
        '[environments.a]\nprovider = "lokal"\nposture = "x"\nfoo = 1\n')
    res = spectral("dr", "status", cwd=tmp_path)
    assert res.returncode == 2
    for key in ("environments.a.provider", "environments.a.posture", "environments.a.foo"):
        assert key in res.stderr, res.stderr
    assert "3 problems" in res.stderr and "Traceback" not in res.stderr
    as_json = json.loads(spectral("dr", "status", "--json", cwd=tmp_path).stderr)
    assert as_json["hint"].count("environments.a.") == 3


def test_lines_are_whole_when_not_a_terminal(tmp_path: Path) -> None:
    """A log or CI captures the output: nothing wrapped at 80 columns, nothing cut with an
    ellipsis (ids, paths and times are what people grep)."""
    deep = tmp_path / ("a-rather-long-folder-name-" * 4).rstrip("-")
    deep.mkdir()
    target = deep / "spectral-configuration-for-the-production-environment.toml"
    res = spectral("init", "--path", str(target), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "…" not in res.stdout
    line = next(x for x in res.stdout.splitlines() if x.startswith("wrote "))
    assert str(target) in line and len(line) > 120, res.stdout


def test_a_new_environment_status_says_what_to_run_first(tmp_path: Path) -> None:
    res = spectral("dr", "status", cwd=tmp_path)
    assert res.returncode == 1                         # the dead-man's switch starts armed
    assert "to start: Tabletop review: spectral dr tabletop" in res.stdout
    assert "starts armed" in res.stdout
    info = json.loads(spectral("dr", "status", "--json", cwd=tmp_path).stdout)
    assert "Tabletop review: spectral dr tabletop" in info["next_steps"]
    assert "RuntimeDirWarning" not in res.stderr and "Warning" not in res.stderr
