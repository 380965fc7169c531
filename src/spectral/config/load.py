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


def _key(loc: tuple[Any, ...]) -> tuple[str, ...]:
    """The key as written in the file: without the tags pydantic puts in the location of a
    value validated by one member of a union (an environment's provider, its evidence store)."""
    parts = [str(p) for p in loc]
    if parts[:1] == ["environments"] and len(parts) > 2:
        del parts[2]
        if len(parts) > 3 and parts[2] == "evidence":
            del parts[3]
    return tuple(parts)


def _elsewhere(loc: tuple[Any, ...]) -> str:
    """For a key this environment's provider does not take: the providers that do."""
    from spectral.providers.registry import BACKENDS

    if len(loc) != 4 or loc[0] != "environments":
        return ""
    here = next((b.provider for b in BACKENDS if b.name == loc[2]), loc[2])
    owners = list(dict.fromkeys(b.provider for b in BACKENDS if b.provider != here and any(
        loc[3] in (name, field.alias) for name, field in b.settings.model_fields.items())))
    if not owners:
        return ""
    return (f"a key of provider {' or '.join(map(repr, owners))}, not of "
            f"provider {here!r}")


def _problem(err: Any) -> str:
    parts = _key(err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "unknown_kind":         # the provider or store that picks the model
        field, _, expected = msg.partition(": ")
        got = err["input"].get(field) if isinstance(err["input"], dict) else None
        parts = (*parts, field)
        msg = "required key is missing" if got is None else f"{expected} (got {got!r})"
    elif err["type"] == "extra_forbidden":
        msg = _elsewhere(err["loc"]) or "unknown key (check its spelling)"
    elif err["type"] == "missing":
        msg = "required key is missing"
    elif "input" in err and err["type"] not in ("value_error",):
        msg = f"{msg} (got {err['input']!r})"
    return f"{'.'.join(parts) or '(top level)'}: {msg}"


def _shared_problems(data: dict[str, Any], err: Any) -> list[str]:
    """An environment whose provider is unknown is validated by no provider's model: its shared
    keys are checked anyway (and keys no provider takes named), so every problem is listed."""
    from spectral.config.base import EnvironmentConfig
    from spectral.providers.registry import BACKENDS

    loc = err["loc"]
    table = data.get("environments", {}).get(loc[1]) if len(loc) == 2 else None
    if err["type"] != "unknown_kind" or not isinstance(table, dict):
        return []
    known = {key for b in BACKENDS for name, field in b.settings.model_fields.items()
             for key in (name, field.alias) if key}
    shared = set(EnvironmentConfig.model_fields)
    kept = {k: v for k, v in table.items() if k in shared or k not in known}
    try:
        EnvironmentConfig.model_validate({**kept, "provider": "-"})
    except ValidationError as more:
        return [_problem({**e, "loc": ("environments", loc[1], "-", *e["loc"])})
                for e in more.errors()]
    return []


def _explain(exc: ValidationError, source: Path, data: dict[str, Any]) -> ConfigError:
    """Every problem at once, each with its key and what is expected: the first on the error
    line, all of them (the first again) in the hint, one per line."""
    problems = [p for e in exc.errors() for p in [_problem(e), *_shared_problems(data, e)]]
    if len(problems) == 1:
        return ConfigError(f"{source}: {problems[0]}")
    return ConfigError(f"{source}: {len(problems)} problems: {problems[0]}; ...",
                       hint="\n    ".join(["every problem:", *problems]))


def parse_config(data: dict[str, Any], source: Path) -> SpectralConfig:
    try:
        return SpectralConfig.model_validate(
            {**data, "source": source, "base_dir": source.parent.resolve()})
    except ValidationError as exc:
        raise _explain(exc, source, data) from None


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
