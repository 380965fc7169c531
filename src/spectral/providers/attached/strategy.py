"""What an attached backend is: a repository strategy that only reads the team's backups.

A managed cluster's strategy (providers/repository.py) also takes backups, archives WAL and
expires; an attached one offers none of that, and nothing in this protocol can write to the
team's repository or touch the live server. A new kind of existing backups (pgBackRest,
a plain archive, Barman, WAL-G) is one implementation of it, its settings model and one line
in the registry."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from spectral.providers.local.repo import Repository
    from spectral.providers.local.restore import RestoreSteps


class AttachedRepository(Protocol):
    """The team's backups and WAL archive, read only."""

    kind: str                  # the provider name it is configured as

    def describe(self) -> str:
        """What it reads, for messages ("pgBackRest stanza 'main' (/etc/...)"); no secret."""

    def check(self) -> None:
        """Reach the repository once (before anything else runs): a configuration that points
        at nothing, or credentials that do not work, is one line (ConfigError or
        CouldNotVerify) naming what is wrong."""

    def repository(self) -> Repository:
        """The catalog and WAL archive as the window, targets and WAL reading see them; what
        spectral fetches of it lives in its own state directory."""

    def forget(self) -> None:
        """Read the repository again on the next look (it changes under spectral)."""

    def restorer(self) -> RestoreSteps:
        """Materialise a backup into a throwaway data directory; its restore_command."""

    def server_env(self) -> dict[str, str]:
        """Environment variables a restored server's restore_command needs (secrets)."""
