"""The provider of a bare DSN (the registry's factory for 'dsn')."""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from spectral.errors import UsageError

if TYPE_CHECKING:
    from spectral.environment import Environment


def dsn_provider(environment: Environment) -> NoReturn:
    raise UsageError(f"environment {environment.name!r} names a database (dsn) but no backups "
                     f"spectral can reach: it has no provider "
                     f"({environment.config.provider}, with a dsn)",
                     hint="drills, restores and backups need provider = \"local\" "
                          "without a dsn (spectral runs it) or \"supabase\"")
