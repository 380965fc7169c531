"""The runbook is the team's: its file words the posture tiers and the manual steps and names
its tools; without one the texts are neutral; a bad file is one line (exit 2); every command
the runbook names is a real one. No server: the render reads the configuration and the ledger
(an environment nobody has started renders as never drilled)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

from conftest import spectral
from spectral.cli.app import app
from spectral.cli.main import hoist_globals
from spectral.config.models import Posture
from spectral.playbooks.catalog import OUTLINES, playbooks
from spectral.runbook.model import NEUTRAL

ROOT = Path(__file__).parent.parent
REFERENCE = ROOT / "docs" / "runbook.toml"
CONFIG = '[environments.local]\nprovider = "local"\nposture = "{posture}"\n'
TEAM = '''
title = "Acme payments: recovery runbook"
intro = "Kept by {team}; RPO target {rpo_target}, last drill {last_drill}."
[tools]
team = "the Acme platform group"
seed = "bin/regen-fixtures"
application = "the ledger-api deployment"
connection_settings = "helm/values-prod.yaml"
pager = "the #acme-oncall channel"
[posture]
alpha = "Only fixtures so far: {seed} rebuilds {environment}; page {pager} anyway."
pitr = "Point in time for {environment}, within {rpo_target}."
[playbooks.provider-failure]
title = "Our cloud database vendor goes away"
manual.application = "Redeploy {application} with the new host in {connection_settings}"
then = ["Tell {pager} the move is over"]
'''
# What only Spectral's own set-up has: none of it may reach a team without a runbook file.
SPECTRALS_OWN = ("FastAPI", "cold_start_seed", "infra/environments.toml", "provision.sh",
                 "ADR-0", "secrets-management", "us-east-1", "auth.users", "domain_invites",
                 "AuthContext", "Neon", "Crunchy", "tax-prep", "authoring harness", "Supabase")


def _setup(tmp_path: Path, book: str | None, posture: str = "alpha") -> Path:
    (tmp_path / "spectral.toml").write_text(CONFIG.format(posture=posture))
    if book is not None:
        (tmp_path / "runbook.toml").write_text(book)
    return tmp_path


def _render(cwd: Path) -> str:
    res = spectral("dr", "runbook", "render", cwd=cwd)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_a_team_runbook_renders_with_its_own_tool_names(tmp_path: Path) -> None:
    page = _render(_setup(tmp_path, TEAM))
    assert page.startswith("# Acme payments: recovery runbook\n")
    assert "Kept by the Acme platform group; RPO target re-seedable, last drill never." in page
    assert "bin/regen-fixtures rebuilds local; page the #acme-oncall channel anyway." in page
    assert "### Our cloud database vendor goes away" in page
    assert "Redeploy the ledger-api deployment with the new host in helm/values-prod.yaml" \
        in page
    assert "Tell the #acme-oncall channel the move is over" in page
    # spectral's automated steps name the team's tools too, and nothing is left unfilled
    assert "Make sure the damaged data can be generated again from bin/regen-fixtures" in page
    assert "Point helm/values-prod.yaml at the new target" in page
    assert not re.search(r"\{[a-z_]+\}", page)
    assert not [name for name in SPECTRALS_OWN if name in page]
    shown = json.loads(spectral("dr", "playbook", "show", "provider-failure", "--json",
                                cwd=tmp_path).stdout)
    assert [s["key"] for s in shown["steps"]] == ["exit", "sign-in", "application", "then-1"]
    assert shown["steps"][2]["text"].startswith("Redeploy the ledger-api deployment")


def test_the_team_file_named_in_the_configuration_is_read(tmp_path: Path) -> None:
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "book.toml").write_text(TEAM)
    (tmp_path / "spectral.toml").write_text('runbook = "ops/book.toml"\n'
                                            + CONFIG.format(posture="pitr"))
    page = _render(tmp_path)
    assert "Point in time for local, within 2.0 min." in page


def test_without_a_file_the_runbook_names_nothing_of_spectrals_own(tmp_path: Path) -> None:
    for posture in ("alpha", "pitr"):
        page = _render(_setup(tmp_path, None, posture))
        assert "no runbook file" in page and f"Current tier: **{posture}**" in page
        assert not [name for name in SPECTRALS_OWN if name in page], posture
        assert not re.search(r"\{[a-z_]+\}", page)
    for p in playbooks(NEUTRAL):
        for tier in Posture:
            texts = " ".join(s.text for s in p.steps(tier))
            assert not [name for name in SPECTRALS_OWN if name in texts], (p.name, tier)


def test_the_reference_environment_file_describes_spectrals_set_up(tmp_path: Path) -> None:
    page = _render(_setup(tmp_path, REFERENCE.read_text()))
    for name in ("FastAPI", "tools/dev/cold_start_seed.py", "infra/environments.toml",
                 "tools/provision/provision.sh --env production", "secrets-management.md"):
        assert name in page
    assert not re.search(r"\{[a-z_]+\}", page)


@pytest.mark.parametrize(("book", "said"), [
    ("title = \"unclosed\n", "not valid TOML"),
    ("titel = \"x\"\n", "titel: unknown key"),
    ("[posture]\nalpha = 3\n", "posture.alpha: Input should be a valid string"),
    ("[playbooks.fire]\ntitle = \"x\"\n", "playbooks.fire: not a playbook"),
    ("[playbooks.schema-drop]\nmanual.wait = \"x\"\n",
     "playbooks.schema-drop.manual.wait: not a manual step of schema-drop"),
    ("intro = \"see {wiki}\"\n", "intro: {wiki} is not a tool or a live figure"),
    ("[playbooks.regional-outage]\nmanual.wait = \"until {rpo_target}\"\n",
     "playbooks.regional-outage.manual.wait: {rpo_target} is not a tool"),
    ("[tools]\nposture = \"x\"\n", "tools: tool names are lower-case words"),
])
def test_a_malformed_runbook_file_is_one_line_and_exit_2(tmp_path: Path, book: str,
                                                         said: str) -> None:
    _setup(tmp_path, book)
    (tmp_path / "answers.toml").write_text('participants = ["a"]\n')
    for args in (("dr", "runbook", "render"), ("dr", "playbook", "list"),
                 ("dr", "playbook", "run", "schema-drop", "--dry-run"),
                 ("dr", "tabletop", "--answers", "answers.toml")):
        res = spectral(*args, cwd=tmp_path)
        assert res.returncode == 2, (args, res.stdout)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "runbook.toml: " in lines[0] and said in lines[0], lines
    assert not (tmp_path / ".spectral").exists()       # stopped before anything started


def test_a_runbook_file_the_configuration_names_must_exist(tmp_path: Path) -> None:
    (tmp_path / "spectral.toml").write_text('runbook = "nowhere.toml"\n'
                                            + CONFIG.format(posture="alpha"))
    res = spectral("dr", "runbook", "render", cwd=tmp_path)
    assert res.returncode == 2 and "runbook: no such file" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("named", [None, "runbook.toml", "."])
def test_a_runbook_path_that_is_a_folder_is_one_line_and_exit_2(tmp_path: Path,
                                                                 named: str | None) -> None:
    """A runbook.toml that is a folder was silently skipped (neutral texts, exit 0): the
    team's runbook was not used and nothing said so."""
    line = "" if named is None else f'runbook = "{named}"\n'
    (tmp_path / "spectral.toml").write_text(line + CONFIG.format(posture="alpha"))
    (tmp_path / "runbook.toml").mkdir()
    res = spectral("dr", "runbook", "render", cwd=tmp_path)
    assert res.returncode == 2, res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "runbook" in lines[0] and "not a file" in lines[0], lines
    assert not res.stdout and not (tmp_path / ".spectral").exists()


def test_a_huge_runbook_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    _setup(tmp_path, 'intro = "' + "A" * (2 * 1024 * 1024) + '"\n')
    res = spectral("dr", "runbook", "render", cwd=tmp_path)
    assert res.returncode == 2, res.stdout[:200]
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "runbook.toml: " in lines[0] and "larger than" in lines[0], lines
    assert not res.stdout


# -- every command the runbook names is real ---------------------------------------------------

COMMAND = re.compile(r"[`(]spectral ([^`)\n]+)")


def command_lines(text: str) -> Iterator[list[str]]:
    """`spectral ...` in backticks, or (spectral ...) in a step: the words up to the first
    that ends a clause (a colon, comma or semicolon after it)."""
    for found in COMMAND.finditer(text.replace("\\\n", " ")):
        words = []
        for word in found[1].split():
            words.append(word.rstrip(":,;"))
            if word[-1] in ":,;":
                break
        yield words


def check_command(words: list[str]) -> str | None:
    """Why the CLI's parser would not take these words (None: it would). Placeholders stand
    for values; nothing is run. (Typer's commands and parameters, read by their attributes:
    typer carries its own click.)"""
    level: Any = get_command(app)
    rest = hoist_globals(words)          # as the command line does: --json anywhere
    positionals = 0
    while rest:
        word = rest.pop(0)
        if word.startswith("-"):
            option = next((p for p in level.params if p.param_type_name == "option"
                           and word.split("=", 1)[0] in (*p.opts, *p.secondary_opts)), None)
            if option is None:
                return f"{level.name} takes no option {word}"
            if not option.is_flag and "=" not in word:
                if not rest:
                    return f"{word} needs a value"
                rest.pop(0)
        elif hasattr(level, "commands") and word in level.commands:
            level = level.commands[word]
        elif hasattr(level, "commands"):
            return f"{level.name} has no command {word!r}"
        else:
            positionals += 1
    if hasattr(level, "commands") and not level.invoke_without_command:
        return f"{level.name} needs a command"
    arguments = [p for p in level.params if p.param_type_name == "argument"]
    if not any(a.nargs == -1 for a in arguments) and positionals > len(arguments):
        return f"{level.name} takes {len(arguments)} argument(s), given {positionals}"
    return None


def _runbook_texts(tmp_path: Path) -> dict[str, str]:
    texts = {"docs/runbook.md": (ROOT / "docs" / "runbook.md").read_text(),
             "docs/runbook.toml": REFERENCE.read_text(),
             "neutral page": _render(_setup(tmp_path / "neutral", None, "pitr")),
             "reference page": _render(_setup(tmp_path / "reference", REFERENCE.read_text()))}
    texts |= {f"playbook {p.name}": " ".join(s.text for t in Posture for s in p.steps(t))
              for p in OUTLINES}
    return texts


def test_every_command_the_runbook_names_is_real(tmp_path: Path) -> None:
    (tmp_path / "neutral").mkdir()
    (tmp_path / "reference").mkdir()
    seen, wrong = 0, []
    for where, text in _runbook_texts(tmp_path).items():
        for words in command_lines(text):
            seen += 1
            if (why := check_command(words)) is not None:
                wrong.append(f"{where}: spectral {' '.join(words)}: {why}")
    assert not wrong, "\n".join(wrong)
    assert seen >= 30


def test_the_command_check_can_fail() -> None:
    assert check_command(["dr", "playbook", "run", "NAME", "--dry-run"]) is None
    assert check_command(["--env", "prod", "dr", "log", "--kind", "drill"]) is None
    assert check_command(["dr", "playbook", "show", "NAME", "--json"]) is None
    assert "no command 'drils'" in (check_command(["dr", "drils"]) or "")
    assert "no option --fast" in (check_command(["dr", "drill", "functional", "--fast"]) or "")
    assert "needs a command" in (check_command(["dr", "playbook"]) or "")
    assert "given 2" in (check_command(["dr", "playbook", "show", "a", "b"]) or "")
    assert list(command_lines("run `spectral dr status --json`, then (spectral dr exit: "
                              "proof)")) == [["dr", "status", "--json"], ["dr", "exit"]]


def test_every_automated_step_has_its_action_and_every_action_its_step(tmp_path: Path) -> None:
    """The steps are the catalog's (the team words the manual ones), the actions plan.py's:
    bound by key, for every playbook at every tier, with none left over."""
    from types import SimpleNamespace

    from spectral.config.load import embedded_default
    from spectral.confirm import AssumeNo
    from spectral.playbooks.plan import Options, Plan

    used: dict[str, set[str]] = {p.name: set() for p in OUTLINES}
    bound: dict[str, set[str]] = {p.name: set() for p in OUTLINES}
    for tier in Posture:
        environment: Any = SimpleNamespace(
            name="local", spectral=embedded_default(tmp_path),
            config=SimpleNamespace(posture=tier),
            provider=SimpleNamespace(wal_archive=lambda: None, describe=lambda: "here"))
        plan = Plan(environment, "dbname=x", AssumeNo(), Options())
        for p in OUTLINES:
            automated = {s.key for s in p.steps(tier) if s.automated}
            actions = set(plan._actions(p.name, tier is Posture.ALPHA))
            assert automated <= actions, (p.name, tier, automated - actions)
            used[p.name] |= automated
            bound[p.name] |= actions
            steps = plan.steps(p.name)
            assert [s.automated for s in steps] == [s.automated for s in p.steps(tier)]
            assert all(s.action is not None for s in steps if s.automated)
    assert used == bound
