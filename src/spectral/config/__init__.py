"""Typed, strict configuration: environments, posture tiers, secret references."""

from spectral.config.load import load_config
from spectral.config.models import EnvironmentConfig, Posture, ProviderKind, SpectralConfig

__all__ = ["EnvironmentConfig", "Posture", "ProviderKind", "SpectralConfig", "load_config"]
