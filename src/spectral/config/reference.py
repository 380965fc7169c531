"""Every configuration key, generated from the models: the shared keys, each provider's own (from
the registry), each evidence store's, the contract's. `spectral init` appends it to the starter
file as comments; docs/commands.md holds it between two markers (`tests/test_docs.py` checks it
is current; `python -m spectral.config.reference docs/commands.md` rewrites it)."""

from __future__ import annotations

import json
import sys
import textwrap
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

BEGIN = "<!-- configuration keys: generated from the models, do not edit -->"
END = "<!-- end of the configuration keys -->"


def _nested(info: FieldInfo) -> tuple[type[BaseModel], bool] | None:
    """The model a field holds as a table (or an array of tables), if any."""
    annotation = info.annotation
    many = typing.get_origin(annotation) is list
    if many:
        annotation = typing.get_args(annotation)[0]
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate, many
    return None


def _default(info: FieldInfo) -> str:
    if typing.get_origin(info.annotation) is typing.Literal:      # the value that picks a model
        return " | ".join(json.dumps(v) for v in typing.get_args(info.annotation))
    if info.default_factory is not None:
        value: Any = info.default_factory()     # type: ignore[call-arg]
    elif info.default is PydanticUndefined:
        return "required"
    else:
        value = info.default
    if value is None:
        return "unset"
    return json.dumps(getattr(value, "value", value), default=_plain)


def _plain(value: Any) -> Any:
    """A default that is a table: the keys it sets beyond their own defaults."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_defaults=True)
    return str(getattr(value, "value", value))


def _listed(info: FieldInfo) -> bool:
    """A key of its table: a value, or an array of tables (which takes short forms too); a
    single table is a section of its own."""
    nested = _nested(info)
    return nested is None or nested[1]


def _keys(model: type[BaseModel], skip: frozenset[str]) -> list[tuple[str, str, str]]:
    return [(info.alias or name, _default(info), info.description or "")
            for name, info in model.model_fields.items()
            if name not in skip and name != "evidence" and not info.exclude and _listed(info)]


def _tables(model: type[BaseModel], path: str, skip: frozenset[str] = frozenset(),
            note: str = "", many: bool = False
            ) -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """(heading, keys) of a table and of every table under it (the evidence store apart)."""
    yield (f"[[{path}]]" if many else f"[{path}]") + note, _keys(model, skip)
    for name, info in model.model_fields.items():
        nested = None if name in skip or name == "evidence" else _nested(info)
        if nested is not None:
            yield from _tables(nested[0], f"{path}.{name}", note=note, many=nested[1])


def sections() -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """(table heading, [(key, default, description)]) for every table a file may have."""
    from spectral.alerts.settings import Webhook
    from spectral.config.base import EnvironmentConfig
    from spectral.config.models import SpectralConfig
    from spectral.ledger.settings import STORES, EvidenceSettings
    from spectral.providers.registry import BACKENDS

    env = "environments.<name>"
    yield "top level", _keys(SpectralConfig, frozenset({"environments"}))
    yield "[alerts.webhooks.<name>]", _keys(Webhook, frozenset())
    names = " | ".join(json.dumps(p) for p in dict.fromkeys(b.provider for b in BACKENDS))
    for heading, keys in _tables(EnvironmentConfig, env, note=" (every provider)"):
        yield heading, [(k, names if k == "provider" else d, t) for k, d, t in keys]
    for backend in BACKENDS:
        yield from _tables(backend.settings, env, _inherited(backend.settings, EnvironmentConfig),
                           f" with provider = {backend.provider!r}"
                           + (f" ({backend.tag.partition('(')[2].rstrip(')')})"
                              if backend.tag else ""))
    stores = " | ".join(json.dumps(name) for name in STORES)
    yield f"[{env}.evidence] (every store)", [
        (k, stores if k == "store" else d, t) for k, d, t in _keys(EvidenceSettings, frozenset())]
    for name, model in STORES.items():
        yield (f"[{env}.evidence] with store = {name!r}",
               _keys(model, _inherited(model, EvidenceSettings)))


def _inherited(model: type[BaseModel], base: type[BaseModel]) -> frozenset[str]:
    """The keys a model takes as its base declares them (listed with the base)."""
    def same(a: FieldInfo, b: FieldInfo) -> bool:
        return (a.annotation, a.default, a.description) == (b.annotation, b.default,
                                                             b.description)
    return frozenset(name for name, info in base.model_fields.items()
                     if name in model.model_fields and same(model.model_fields[name], info))


def markdown() -> str:
    lines = [BEGIN]
    for heading, keys in sections():
        lines += ["", f"`{heading}`", ""]
        lines += [f"- `{key}` ({default}): {text}" for key, default, text in keys]
    return "\n".join([*lines, "", END])


def toml_comments() -> str:
    """The same list as TOML comments, for the starter file."""
    lines = ["", "# ---- Every key (generated from the configuration models) ----"]
    for heading, keys in sections():
        lines += ["#", f"# {heading}"]
        for key, default, text in keys:
            lines += textwrap.wrap(f"{key} ({default}): {text}", 96, initial_indent="#   ",
                                   subsequent_indent="#       ")
    return "\n".join(lines) + "\n"


def rewrite(doc: Path) -> None:
    text = doc.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    doc.write_text(head + markdown() + tail)


if __name__ == "__main__":
    rewrite(Path(sys.argv[1]))
