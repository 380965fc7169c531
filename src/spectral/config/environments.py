"""The [environments] of a configuration, each validated by its own backend's settings model
when it is first used: a command pays for the environment it works on, not for the models of
every provider in the file (issue 32, fixed costs), and an environment with a problem is
reported, with its key and the file, by any command that uses it. `check_all` validates every
one at once (`dr status --all`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_core import core_schema

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler

    from spectral.config.base import EnvironmentConfig

EMBEDDED = "the embedded default configuration"


def _table(value: Any) -> Any:
    """An [environments.<name>] value: a table (or settings validated already)."""
    from spectral.config.base import EnvironmentConfig

    if isinstance(value, dict | EnvironmentConfig):
        return value
    raise ValueError(f"expected a table [environments.<name>], got {type(value).__name__}")


def environment_problems(name: str, table: Mapping[str, Any]
                         ) -> EnvironmentConfig | list[str]:
    """One environment's settings, from the backend its table selects, or every problem of
    it, each named as in the file."""
    from pydantic import ValidationError

    from spectral.config.problems import problems_of
    from spectral.providers.registry import UNKNOWN_PROVIDER, select

    data = {"environments": {name: dict(table)}}
    backend = select(table)
    if backend is None:
        return problems_of([{"type": "unknown_kind", "loc": ("environments", name),
                             "msg": UNKNOWN_PROVIDER, "input": dict(table)}], data)
    try:
        return backend.settings.model_validate(dict(table))
    except ValidationError as exc:
        return problems_of([{**e, "loc": ("environments", name, backend.name, *e["loc"])}
                            for e in exc.errors()], data)


class Environments(Mapping[str, "EnvironmentConfig"]):
    """Environment name -> its settings, validated on first use and kept. Membership, order
    and names come from the file without validating anything."""

    def __init__(self, tables: Mapping[str, Any], source: Path | str = EMBEDDED) -> None:
        self._tables = dict(tables)
        self._valid: dict[str, EnvironmentConfig] = {}
        self.source = source

    def __getitem__(self, name: str) -> EnvironmentConfig:
        got = self._validated(name)
        if isinstance(got, list):
            from spectral.config.problems import problems_error

            raise problems_error(got, self.source)
        return got

    def _validated(self, name: str) -> EnvironmentConfig | list[str]:
        if name in self._valid:
            return self._valid[name]
        table = self._tables[name]
        got = environment_problems(name, table) if isinstance(table, Mapping) else table
        if not isinstance(got, list):
            self._valid[name] = got
        return got

    def __contains__(self, name: object) -> bool:
        return name in self._tables

    def __iter__(self) -> Iterator[str]:
        return iter(self._tables)

    def __len__(self) -> int:
        return len(self._tables)

    def __repr__(self) -> str:
        return f"Environments({list(self._tables)})"

    def check_all(self) -> None:
        """Validate every environment; one ConfigError lists every problem of every one."""
        from spectral.config.problems import problems_error

        problems: list[str] = []
        for name in self._tables:
            got = self._validated(name)
            problems += got if isinstance(got, list) else []
        if problems:
            raise problems_error(problems, self.source)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any,
                                     handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        tables = core_schema.dict_schema(core_schema.str_schema(),
                                         core_schema.no_info_plain_validator_function(_table))
        return core_schema.no_info_after_validator_function(
            cls, tables, serialization=core_schema.plain_serializer_function_ser_schema(
                lambda e: {name: e[name] for name in e}))
