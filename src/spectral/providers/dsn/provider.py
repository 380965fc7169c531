"""The provider of a bare DSN (the registry's factory for 'dsn'): a database spectral connects
to and reaches no backups of. Its source is the DSN; everything that needs
backups is refused in one line saying what this environment is, and what would serve it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from spectral.config.secrets import resolve_dsn
from spectral.errors import UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from spectral.environment import Environment
    from spectral.providers.base import Capability


class DsnProvider:
    """A database named by a connection string: a source, no backups."""

    kind = "dsn"
    capabilities: frozenset[Capability] = frozenset()

    def __init__(self, dsn: str, name: str | None = None, base_dir: Path | None = None) -> None:
        self.dsn, self.name, self.base_dir = dsn, name, base_dir

    def describe(self) -> str:
        return (f"the database environment {self.name!r} names (dsn)" if self.name
                else "the given database (dsn)")

    def instead(self, capability: str) -> str:
        from spectral.providers.registry import BACKENDS

        others = " or ".join(repr(b.name) for b in BACKENDS if b.name != self.kind)
        return f"drills, restores and backups need a provider with backups: {others}"

    def busy(self, what: str) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def source(self) -> Iterator[str]:
        yield resolve_dsn(self.dsn, self.base_dir)

    def running_source(self) -> str | None:
        return resolve_dsn(self.dsn, self.base_dir)

    def refuse(self, what: str = "this") -> NoReturn:
        who = f"environment {self.name!r}" if self.name else "the given DSN"
        raise UsageError(f"{who} names a database (dsn) but no backups spectral can reach: "
                         f"{what} needs them", hint=self.instead(what))

    # no backups: every operation on them is refused
    def backup(self, options: Mapping[str, object] | None = None, **_: Any) -> NoReturn:
        self.refuse("a backup")

    def backups(self) -> NoReturn:
        self.refuse("the list of backups")

    def window(self) -> NoReturn:
        self.refuse("the recoverable window")

    def pitr_enabled(self) -> bool:
        return False

    def live_lineage(self) -> set[str] | None:
        return None

    def archive_status(self) -> dict[str, Any] | None:
        return None

    def pitr_readiness(self, *_: Any, **__: Any) -> NoReturn:
        self.refuse("PITR activation")

    def tidy(self, report: Any) -> None:
        return None

    def drill_point(self, *_: Any, **__: Any) -> NoReturn:
        self.refuse("a drill")

    def target_after(self, *_: Any, **__: Any) -> NoReturn:
        self.refuse("a drill")

    def provision_copy(self, *_: Any, **__: Any) -> NoReturn:
        self.refuse("a restored copy")

    def keep_copy(self, *_: Any) -> NoReturn:
        self.refuse("a restored copy")

    def remove_copy(self, *_: Any) -> NoReturn:
        self.refuse("a restored copy")

    def restored_through(self, *_: Any) -> None:
        return None

    def restore_new(self, *_: Any, **__: Any) -> NoReturn:
        self.refuse("a restore")

    def restore_in_place(self, *_: Any, **__: Any) -> NoReturn:
        self.refuse("a restore")

    # what it can do beyond its source: nothing
    def wal_archive(self) -> None:
        return None

    def backup_options(self) -> None:
        return None

    def retention(self) -> None:
        return None

    def restored_instances(self) -> None:
        return None

    def in_place_undo(self) -> None:
        return None

    def wal_stream(self) -> None:
        return None

    def wal_status(self) -> None:
        return None


def dsn_provider(environment: Environment) -> DsnProvider:
    assert environment.config.dsn is not None       # the dsn settings require one
    return DsnProvider(environment.config.dsn, environment.name, environment.spectral.base_dir)
