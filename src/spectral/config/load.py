"""Read and validate the configuration file; errors name the file, the key and the expectation."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from spectral.config.contract import REFERENCE_CONTRACT
from spectral.config.models import SpectralConfig
from spectral.errors import ConfigError

DEFAULT_FILE = "spectral.toml"


def embedded_default(base_dir: Path) -> SpectralConfig:
    """The configuration used when there is no file: one local environment, `local`."""
    return SpectralConfig.model_validate(
        {"default_environment": "local",
         "environments": {"local": {"provider": "local", "contract": REFERENCE_CONTRACT}},
         "base_dir": base_dir})


def _problem(err: Any) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check its spelling)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif "input" in err and err["type"] not in ("value_error",):
        msg = f"{msg} (got {err['input']!r})"
    return f"{key}: {msg}"


def _explain(exc: ValidationError, source: Path) -> ConfigError:
    """Every problem at once, each with its key and what is expected: the first on the error
    line, all of them (the first again) in the hint, one per line."""
    problems = [_problem(e) for e in exc.errors()]
    if len(problems) == 1:
        return ConfigError(f"{source}: {problems[0]}")
    return ConfigError(f"{source}: {len(problems)} problems: {problems[0]}; ...",
                       hint="\n    ".join(["every problem:", *problems]))


def parse_config(data: dict[str, Any], source: Path) -> SpectralConfig:
    try:
        return SpectralConfig.model_validate(
            {**data, "source": source, "base_dir": source.parent.resolve()})
    except ValidationError as exc:
        raise _explain(exc, source) from None


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
