"""The ledger of an environment, in the store its configuration names, signing when a key is
configured. Each store opens its own remote (ledger/settings.py)."""

from __future__ import annotations

from spectral.config.models import SpectralConfig
from spectral.ledger.settings import secret
from spectral.ledger.signing import Signer, load_private
from spectral.ledger.store import Ledger


def open_ledger(cfg: SpectralConfig, name: str) -> Ledger:
    env = cfg.environments[name]
    evidence = env.evidence
    signer = None
    if evidence.signing_key:
        signer = Signer(load_private(secret(evidence.signing_key, cfg.base_dir)))
    return Ledger(cfg.state_dir(name) / "evidence", evidence.remote(cfg.base_dir), signer,
                  tuple(evidence.public_keys))
