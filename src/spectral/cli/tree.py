"""The command tree, built as far as a command line reaches (issue 32, fixed costs).

Typer turns every command of the application into a click command (signatures inspected,
parameters made) before it parses a word: ~30 ms for 59 commands, paid by each of them. Here
a group's subcommands are made when they are asked for, by name: `spectral dr fingerprint`
makes the root, `dr` and `fingerprint`; `--help` and shell completion ask for every name they
list, so they still see every command. The commands made are typer's own
(`typer.main.get_command_from_info`), with the same names, help and parameters: only when
they are made changes. Tests that walk the whole tree use `typer.main.get_command`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, MutableMapping
from functools import partial
from typing import Any

import typer
import typer.main
from typer._click import Command
from typer.core import TyperGroup
from typer.models import TyperInfo

Build = Callable[[], Command]


class LazyCommands(MutableMapping[str, Command]):
    """A group's subcommands by name: names and order known at once, each command made on
    first access and kept."""

    def __init__(self, builders: dict[str, Build]) -> None:
        self._builders = builders
        self._made: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        if name not in self._made:
            self._made[name] = self._builders[name]()      # KeyError: no such command
        return self._made[name]

    def __setitem__(self, name: str, command: Command) -> None:
        self._builders[name] = lambda: command
        self._made[name] = command

    def __delitem__(self, name: str) -> None:
        del self._builders[name]
        self._made.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._builders)

    def __len__(self) -> int:
        return len(self._builders)

    def made(self) -> list[str]:
        """The names of the subcommands made so far (tests look)."""
        return list(self._made)


def _builders(instance: typer.Typer, options: dict[str, Any]) -> dict[str, Build]:
    """Name -> how to make it, in typer's order: the commands, then the groups (a group
    added without a name lends its commands to this one, as typer does)."""
    command_options = {k: v for k, v in options.items() if k != "suggest_commands"}
    builders: dict[str, Build] = {}
    for info in instance.registered_commands:
        assert info.callback is not None, "a command must have a callback function"
        name = info.name or typer.main.get_command_name(info.callback.__name__)
        builders[name] = partial(typer.main.get_command_from_info, info, **command_options)
    for group in instance.registered_groups:
        group_name = typer.main.solve_typer_info_defaults(group).name
        assert group.typer_instance is not None
        if group_name:
            builders[group_name] = partial(_group, group, options)
        else:
            builders.update(_builders(group.typer_instance, options))
    return builders


def _group(info: TyperInfo, options: dict[str, Any]) -> TyperGroup:
    """The group `info` describes, made by typer without its subcommands (its own options and
    callback, help, settings), then given them lazily."""
    instance = info.typer_instance
    assert instance is not None
    bare = copy.copy(instance)
    bare.registered_commands, bare.registered_groups = [], []
    alone = copy.copy(info)
    alone.typer_instance = bare
    group = typer.main.get_group_from_info(alone, **options)
    group.commands = LazyCommands(_builders(instance, options))
    return group


def command_tree(app: typer.Typer) -> Command:
    """The click command of `app`, its subcommands made on demand. An application typer
    would make a single command of, or one with shell completion options, is made by typer."""
    if app._add_completion or not (app.registered_callback or app.info.callback
                                   or app.registered_groups or len(app.registered_commands) > 1):
        return typer.main.get_command(app)
    return _group(TyperInfo(app), {"pretty_exceptions_short": app.pretty_exceptions_short,
                                   "rich_markup_mode": app.rich_markup_mode,
                                   "suggest_commands": app.suggest_commands})

