"""Configuration problems as a person reads them: each with its key as written in the file and
what is expected, every one at once (pydantic's errors, located and worded for a TOML file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spectral.errors import ConfigError


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


def problem(err: Any) -> str:
    """One pydantic error (or one shaped like it) as `key.path: what is expected`."""
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


def shared_problems(data: dict[str, Any], err: Any) -> list[str]:
    """An environment whose provider is unknown is validated by no provider's model: its shared
    keys are checked anyway (and keys no provider takes named), so every problem is listed."""
    from pydantic import ValidationError

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
        return [problem({**e, "loc": ("environments", loc[1], "-", *e["loc"])})
                for e in more.errors()]
    return []


def problems_of(errors: list[Any], data: dict[str, Any]) -> list[str]:
    """Every problem of a validation, each with its key and what is expected."""
    return [p for e in errors for p in [problem(e), *shared_problems(data, e)]]


def problems_error(problems: list[str], source: Path | str) -> ConfigError:
    """Every problem at once: the first on the error line, all of them (the first again) in
    the hint, one per line."""
    if len(problems) == 1:
        return ConfigError(f"{source}: {problems[0]}")
    return ConfigError(f"{source}: {len(problems)} problems: {problems[0]}; ...",
                       hint="\n    ".join(["every problem:", *problems]))
