"""Typed, strict configuration: environments, posture tiers, secret references. Each provider's
settings model lives in its package; the registry (providers/registry.py) lists them.

The names below load on first use: importing a light submodule (durations) must not import
pydantic and every provider's settings (`spectral --help` pays for what it imports)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from spectral.config.load import load_config
    from spectral.config.models import EnvironmentConfig, Posture, SpectralConfig

__all__ = ["EnvironmentConfig", "Posture", "SpectralConfig", "load_config"]


def __getattr__(name: str) -> Any:
    if name == "load_config":
        from spectral.config import load

        return load.load_config
    if name in __all__:
        from spectral.config import models

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
