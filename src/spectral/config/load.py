"""Read and validate the configuration file; errors name the file, the key and the expectation.
The file's TOML and its top level are validated here; each environment when it is first used
(config/environments.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from spectral.config.contract import REFERENCE_CONTRACT
from spectral.config.models import SpectralConfig
from spectral.config.problems import problems_error, problems_of
from spectral.errors import ConfigError

DEFAULT_FILE = "spectral.toml"


def embedded_default(base_dir: Path) -> SpectralConfig:
    """The configuration used when there is no file: one local environment, `local`."""
    return SpectralConfig.model_validate(
        {"default_environment": "local",
         "environments": {"local": {"provider": "local", "contract": REFERENCE_CONTRACT}},
         "base_dir": base_dir})


def parse_config(data: dict[str, Any], source: Path) -> SpectralConfig:
    try:
        return SpectralConfig.model_validate(
            {**data, "source": source, "base_dir": source.parent.resolve()})
    except ValidationError as exc:
        raise problems_error(problems_of(exc.errors(), data), source) from None


def load_config(path: Path | None, *, cwd: Path | None = None) -> SpectralConfig:
    """The explicit file, else spectral.toml in the working directory, else the embedded default."""
    cwd = cwd or Path.cwd()
    if path is None:
        candidate = cwd / DEFAULT_FILE
        if not candidate.exists():
            return embedded_default(cwd)
        path = candidate
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, path)
