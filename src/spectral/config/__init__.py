"""Typed, strict configuration: environments, posture tiers, secret references. Each provider's
settings model lives in its package; the registry (providers/registry.py) lists them."""

from spectral.config.load import load_config
from spectral.config.models import EnvironmentConfig, Posture, SpectralConfig

__all__ = ["EnvironmentConfig", "Posture", "SpectralConfig", "load_config"]
