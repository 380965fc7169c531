"""The command tree a command line runs (cli/tree.py) is typer's, made only as far as the
line reaches: the same names, help and parameters everywhere; a command makes nothing beside
its path; help still lists every command."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from typing import Any

import pytest
from typer.main import get_command

from spectral.cli.app import app
from spectral.cli.main import run_cli
from spectral.cli.tree import LazyCommands, command_tree


def _shape(command: Any) -> dict[str, Any]:
    """What a person or a parser sees of a command, its subcommands included."""
    params = [(p.name, p.opts, p.secondary_opts, p.required, p.default, p.nargs, p.multiple,
               getattr(p, "help", None), getattr(p, "is_flag", None), p.metavar)
              for p in command.params]
    subcommands = getattr(command, "commands", None)
    return {"name": command.name, "help": command.help, "short_help": command.short_help,
            "hidden": command.hidden, "params": params,
            "no_args_is_help": command.no_args_is_help,
            "invoke_without_command": getattr(command, "invoke_without_command", None),
            "commands": None if subcommands is None else
            {name: _shape(sub) for name, sub in subcommands.items()}}


def test_the_lazy_tree_is_typer_s_tree() -> None:
    eager, lazy = get_command(app), command_tree(app)
    assert isinstance(lazy.commands, LazyCommands)  # type: ignore[attr-defined]
    assert _shape(lazy) == _shape(eager)


def test_a_command_line_makes_only_its_path() -> None:
    tree = command_tree(app)
    _output(tree, ["dr", "snapshots", "--help"])
    assert tree.commands.made() == ["dr"]
    assert tree.commands["dr"].commands.made() == ["snapshots"]


def test_a_group_s_help_makes_its_own_commands_only() -> None:
    tree = command_tree(app)
    _output(tree, ["dr", "drill", "--help"])          # it lists them, with their short help
    assert tree.commands.made() == ["dr"]
    assert tree.commands["dr"].commands.made() == ["drill"]
    drill = tree.commands["dr"].commands["drill"].commands
    assert drill.made() == list(drill) and len(drill) >= 2


def _output(tree: Any, words: list[str]) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert tree.main(args=words, prog_name="spectral", standalone_mode=False) == 0
    return out.getvalue()


@pytest.mark.parametrize("words", [["--help"], ["dr", "--help"], ["dr", "log", "--help"],
                                   ["dr", "fingerprint", "--help"]])
def test_help_is_typer_s(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    lazy = _output(command_tree(app), words)
    assert lazy == _output(get_command(app), words)
    assert run_cli(words) == 0 and capsys.readouterr().out == lazy


def test_an_unknown_command_is_still_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["dr", "fingerprnt"]) == 2
    err = capsys.readouterr().err
    assert "No such command 'fingerprnt'" in err and "fingerprint" in err, err
