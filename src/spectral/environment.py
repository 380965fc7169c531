"""One environment: its name, configuration, state directory, ledger and provider, opened once
at the edge and passed to drills, playbooks and posture.

    from spectral.config.load import load_config
    from spectral.environment import open_environment

    environment = open_environment(load_config(), "staging")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from spectral.config.models import EnvironmentConfig, SpectralConfig
from spectral.ledger import Ledger
from spectral.ledger.open import open_ledger
from spectral.providers.base import Provider, Report


@dataclass
class Environment:
    name: str
    config: EnvironmentConfig
    spectral: SpectralConfig
    state_dir: Path
    ledger: Ledger
    report: Report | None = field(default=None, repr=False)
    _provider: Provider | None = field(default=None, repr=False)

    @property
    def provider(self) -> Provider:
        """Where the environment's backups live, from its backend's factory (opened on first
        use: reading the ledger needs no token)."""
        if self._provider is None:
            from spectral.providers.registry import open_provider

            self._provider = open_provider(self)
        return self._provider

    @property
    def has_provider(self) -> bool:
        from spectral.providers.registry import has_provider

        return has_provider(self.config)


def open_environment(cfg: SpectralConfig, name: str | None = None, *,
                     report: Report | None = None) -> Environment:
    """The named environment (default: the configuration's default) with its provider."""
    env_name, env = cfg.environment(name)
    state_dir = cfg.state_dir(env_name)
    return Environment(env_name, env, cfg, state_dir, open_ledger(cfg, env_name), report)
