"""One environment: its name, configuration, state directory, ledger and provider, opened once
at the edge and passed to drills, playbooks and posture.

    from spectral.config.load import load_config
    from spectral.environment import open_environment

    environment = open_environment(load_config(), "staging")
    with environment.database() as dsn:
        ...

Every environment has a provider (the registry's factory for its `provider`; a bare DSN's has
only a source), and its database is the provider's source."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from spectral.config.models import EnvironmentConfig, SpectralConfig
from spectral.errors import SpectralError

if TYPE_CHECKING:
    from spectral.ledger import Ledger
    from spectral.providers.base import Provider, Report


@dataclass
class Environment:
    name: str
    config: EnvironmentConfig
    spectral: SpectralConfig
    state_dir: Path
    report: Report | None = field(default=None, repr=False)
    _provider: Provider | None = field(default=None, repr=False)
    _ledger: Ledger | None = field(default=None, repr=False)

    @property
    def ledger(self) -> Ledger:
        """The evidence ledger, in the configured store (opened on first use: a command that
        only reads the database needs no signing key)."""
        if self._ledger is None:
            self._open_ledger()
            with contextlib.suppress(SpectralError):   # a damaged ledger: owed until repaired
                self.record_owed()
        assert self._ledger is not None
        return self._ledger

    def _open_ledger(self) -> Ledger:
        if self._ledger is None:
            from spectral.ledger.open import open_ledger

            self._ledger = open_ledger(self.spectral, self.name)
        return self._ledger

    def record_owed(self) -> int:
        """Append what the environment's backend owes its ledger (an in-place restore, an
        undo, an interrupted one put right: ledger/outbox.py); how many entries. The ledger
        is opened only when something is owed."""
        from spectral.ledger.outbox import Outbox, deliver

        outbox = Outbox(self.state_dir)
        for path in outbox.unreadable():
            if self.report is not None:
                self.report(f"spectral: {path} cannot be read: an entry owed to the ledger (an "
                            f"in-place restore or undo) is not recorded; look at the file")
        if not outbox.owed():
            return 0
        return deliver(outbox, self._open_ledger(), self.name)

    @property
    def provider(self) -> Provider:
        """Where the environment's database and backups live, from its backend's factory
        (opened on first use: reading the ledger needs no token)."""
        if self._provider is None:
            from spectral.providers.registry import open_provider

            self._provider = open_provider(self)
        return self._provider

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """The environment's database for the block: its provider's source (a cluster
        spectral runs is started for it), checked to answer (ConnectError, exit 2, when it
        does not)."""
        from spectral.pg.conn import connect

        with self.provider.source() as dsn:
            with connect(dsn) as conn:
                conn.execute("select 1")
            yield dsn


def open_environment(cfg: SpectralConfig, name: str | None = None, *,
                     report: Report | None = None) -> Environment:
    """The named environment (default: the configuration's default) with its provider."""
    env_name, env = cfg.environment(name)
    return Environment(env_name, env, cfg, cfg.state_dir(env_name), report)
