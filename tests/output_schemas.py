"""The published JSON Schemas (docs/schemas/*.json) as a validator: every `--json` output a test
runs through `conftest.spectral` is checked against the schema its `schema_version` names, and
the error object a failing command writes to stderr against error.v1."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS = Path(__file__).parent.parent / "docs" / "schemas"
KEY = "schema_version"


@functools.cache
def registry() -> Registry[Any]:
    """Every schema by its $id, so the `$ref`s between them resolve without a network."""
    resources = []
    for path in sorted(SCHEMAS.glob("*.json")):
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    return Registry().with_resources(resources)


@functools.cache
def schema(name: str) -> dict[str, Any]:
    path = SCHEMAS / f"{name}.json"
    assert path.exists(), f"schema_version {name!r} names no file in docs/schemas"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def problems(document: Any, name: str) -> list[str]:
    validator = Draft202012Validator(schema(name), registry=registry())
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in validator.iter_errors(document)]


def schema_name(document: Any) -> str | None:
    """The schema an output names: its own key, or its items' (one and the same) for a list;
    None for an empty list (nothing to name it)."""
    if isinstance(document, dict):
        assert KEY in document, f"a --json object without {KEY}: {list(document)[:8]}"
        return str(document[KEY])
    assert isinstance(document, list), f"a --json output that is a {type(document).__name__}"
    names = {item.get(KEY) for item in document if isinstance(item, dict)}
    assert len(names) <= 1 and None not in names, f"list items name schemas {names}"
    return str(names.pop()) if names else None


def validate(document: Any, expected: str | None = None) -> None:
    name = schema_name(document)
    if expected is not None and name is not None:
        assert name == expected, f"{KEY} {name!r}, expected {expected!r}"
    if name is None:
        return
    found = problems(document, name)
    assert not found, f"the output does not follow {name}:\n  " + "\n  ".join(found[:20])


def validate_run(args: tuple[str, ...], returncode: int, stdout: str, stderr: str) -> None:
    """What a `spectral ... --json` run printed: its output (when it printed JSON: `dr runbook
    render` without --out prints Markdown) and, when it failed, its error object."""
    if "--json" not in args:
        return
    try:
        document = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        document = None
    if document is not None:
        validate(document)
    last = next((line for line in reversed(stderr.splitlines()) if line.strip()), "")
    if returncode != 0 and last.startswith("{"):
        validate(json.loads(last), "error.v1")
