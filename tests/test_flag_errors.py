"""A bad value in a flag is named by the flag the user typed, before anything is read or
started (found by probing the CLI as a new user)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import spectral


@pytest.mark.parametrize(("args", "flag"), [
    (("dr", "status", "--as-of", "yesterday-ish"), "--as-of"),
    (("dr", "status", "--all", "--as-of", "yesterday-ish"), "--as-of"),
    (("dr", "evidence", "export", "--since", "last week", "--out", "bundle.tar"), "--since"),
])
def test_a_bad_time_names_its_own_flag(tmp_path: Path, args: tuple[str, ...], flag: str) -> None:
    done = spectral(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"{flag} '" in done.stderr and "--target-time" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".spectral").exists(), "nothing is created for a refused flag"


@pytest.mark.parametrize("value", ["99999999999d", "1e400s"])
def test_a_huge_older_than_is_a_usage_error(tmp_path: Path, value: str) -> None:
    done = spectral("dr", "drill", "functional", "--point", "random", "--older-than", value,
                    cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "--older-than" in done.stderr and "internal error" not in done.stderr, done.stderr


@pytest.mark.parametrize("flags", [("--seed", "5"), ("--older-than", "1s")])
def test_random_point_flags_without_point_random_are_refused(tmp_path: Path,
                                                              flags: tuple[str, str]) -> None:
    """`--older-than 1s` alone was ignored (a newest-point drill ran) while `--seed` alone was
    refused."""
    done = spectral("dr", "drill", "functional", *flags, cwd=tmp_path)
    assert done.returncode == 2 and f"{flags[0]} goes with --point random" in done.stderr
    assert not (tmp_path / ".spectral").exists()


OUTPUTS = [("dr", "status", "--prom-file"), ("dr", "status", "--junit"),
           ("dr", "status", "--all", "--prom-file"), ("dr", "report", "--html"),
           ("dr", "report", "--all", "--html"), ("dr", "drill", "functional", "--junit"),
           ("dr", "drill", "post-migration", "--junit"), ("dr", "runbook", "render", "--out")]


@pytest.mark.parametrize("command", OUTPUTS, ids=lambda c: " ".join(c))
@pytest.mark.parametrize("where", ["under-a-file", "a-folder"])
def test_an_output_file_that_cannot_be_written_is_refused_first(tmp_path: Path,
                                                                command: tuple[str, ...],
                                                                where: str) -> None:
    """`--prom-file FILE/x.prom` was 'internal error: FileExistsError' (exit 3) after the work
    was done (a drill ran, alerts went out); a folder, 'IsADirectoryError'."""
    (tmp_path / "plain").write_text("a file\n")
    (tmp_path / "folder").mkdir()
    target = tmp_path / ("plain/out.txt" if where == "under-a-file" else "folder")
    done = spectral(*command, str(target), cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and command[-1] in lines[0] and "internal error" not in lines[0], lines
    assert not (tmp_path / ".spectral").exists(), "refused before anything started"
    assert (tmp_path / "plain").read_text() == "a file\n"
