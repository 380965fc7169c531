"""docs/scheduling.md's unattended jobs, played twice on two fresh checkouts that share only
the evidence store (a bare git remote, or a bucket on the tests' S3 server), against Supabase
(the emulator): run 1 takes the branch drill and the tabletop review; run 2's `dr status` and
`dr runbook render` see run 1's evidence, and once nothing has run for longer than the cadence
the status exits 1 (the dead-man's switch)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import SPECTRAL, SUPABASE_TOKEN
from s3_server import S3Server, s3_server
from spectral.runner import run
from supabase_emulator import Emulator, Server

DOCS = Path(__file__).parent.parent / "docs" / "scheduling.md"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


def scheduled(work: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SPECTRAL, "--env", "production", *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def checkout(root: Path, name: str, config: str) -> Path:
    """A CI runner's fresh checkout: the repository's spectral.toml, nothing else."""
    work = root / name
    work.mkdir()
    (work / "spectral.toml").write_text(config)
    return work


@pytest.mark.parametrize("kind", ["git", "s3"])
def test_two_scheduled_runs_share_only_the_store(
        project: tuple[Path, Emulator, str, Server], s3: S3Server, kind: str) -> None:
    work, _emu, _dsn, _server = project
    base = (work / "spectral.toml").read_text()
    env = {**os.environ, "SUPABASE_TEST_TOKEN": SUPABASE_TOKEN}
    if kind == "git":
        remote = work / "evidence.git"
        run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], timeout=60)
        store = f'\n[environments.production.evidence]\nstore = "git"\nremote = "{remote}"\n'
    else:
        s3.client().create_bucket(Bucket="dr-evidence")
        env |= {"S3_KEY": s3.key_id, "S3_SECRET": s3.secret}
        store = (f'\n[environments.production.evidence]\nstore = "s3"\nendpoint = '
                 f'"{s3.endpoint}"\nbucket = "dr-evidence"\nprefix = "production"\n'
                 f'path_style = true\naccess_key_id = "env:S3_KEY"\n'
                 f'secret_access_key = "env:S3_SECRET"\nverify_tls = false\n')
    config = base + store
    # the commands the documented workflow runs, and nothing else
    documented = DOCS.read_text()
    for command in ("dr drill functional --branch --yes", "dr status"):
        assert command in documented, command

    first = checkout(work, "run1", config)
    drill = scheduled(first, env, "dr", "drill", "functional", "--branch", "--yes", "--json")
    assert drill.returncode == 0, drill.stdout + drill.stderr
    answers = first / "answers.toml"
    answers.write_text('participants = ["ana"]\nfindings = []\naction_items = []\n')
    review = scheduled(first, env, "dr", "tabletop", "--scenario", "schema-drop", "--answers",
                       str(answers))
    assert review.returncode == 0, review.stderr

    second = checkout(work, "run2", config)          # a new runner: no state of its own
    status = scheduled(second, env, "dr", "status", "--json")
    info = json.loads(status.stdout)
    assert info["last_drill"] is not None and info["last_drill"]["outcome"] == "pass", info
    overdue = [i["name"] for i in info["cadence"] if i["state"] == "overdue"]
    assert "Functional restore drill" not in overdue and "Tabletop review" not in overdue
    text = scheduled(second, env, "dr", "runbook", "render").stdout
    assert re.search(r"functional drill: \*\*PASS\*\*", text), text
    later = (datetime.now(UTC) + timedelta(days=120)).isoformat()
    lapsed = scheduled(second, env, "dr", "status", "--as-of", later, "--json")
    assert lapsed.returncode == 1, lapsed.stdout + lapsed.stderr
    overdue = [i["name"] for i in json.loads(lapsed.stdout)["cadence"]
               if i["state"] == "overdue"]
    assert "Functional restore drill" in overdue and "Tabletop review" in overdue
    for out in (drill, review, status, lapsed):
        assert SUPABASE_TOKEN not in out.stdout + out.stderr
        assert env.get("S3_SECRET", "never-set") not in out.stdout + out.stderr
