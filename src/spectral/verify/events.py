"""The differences between two descriptions of a database's event triggers (verify/catalog.py's
EVENT_TRIGGERS), each in one line a reader can act on: `event trigger pgrst_ddl_watch:
disabled`. An event trigger whose function lives in one of the platform's (managed) schemas is
the platform's, and its lines are returned by that schema, to be reported as its drift."""

from __future__ import annotations

from typing import Any

Objects = dict[str, dict[str, Any]]
STATES = {"O": "enabled", "D": "disabled", "R": "enabled on replica only", "A": "always"}
ATTRS = ("event", "function", "tags", "enabled")


def function_schema(function: str) -> str:
    """The schema of a schema-qualified function's text (`extensions.f()`, `"a.b".f()`)."""
    if not function.startswith('"'):
        return function.split(".", 1)[0]
    i = 1
    while i < len(function):
        if function[i] == '"':
            if function[i + 1:i + 2] != '"':
                return function[1:i]
            i += 1
        i += 1
    return function


def _tags(tags: Any) -> str:
    return ", ".join(tags) if tags else "any command"


def _change(name: str, attr: str, a: Any, b: Any) -> str:
    head = f"event trigger {name}:"
    if attr == "enabled":
        if b == "D" or (a == "D" and b == "O"):
            return f"{head} {STATES.get(b, b)}"
        return f"{head} {STATES.get(a, a)} -> {STATES.get(b, b)}"
    if attr == "tags":
        return f"{head} tags {_tags(a)} -> {_tags(b)}"
    return f"{head} {attr} {a} -> {b}"


def _same_but_name(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ATTRS)


def event_trigger_diffs(a: Objects, b: Objects, platform: set[str]
                        ) -> tuple[list[str], dict[str, list[str]]]:
    """The lines for the event triggers of `a` and `b` (objects keyed `event_trigger
    <name>`): those of the database, and the platform's by the schema of their function."""
    ours: list[str] = []
    theirs: dict[str, list[str]] = {}

    def say(line: str, *objs: dict[str, Any]) -> None:
        schemas = {function_schema(str(o.get("function", ""))) for o in objs}
        if len(schemas) == 1 and (schema := schemas.pop()) in platform:
            theirs.setdefault(schema, []).append(line)
        else:
            ours.append(line)

    only_a = [k for k in sorted(a) if k not in b]
    only_b = [k for k in sorted(b) if k not in a]
    for ka in list(only_a):
        kb = next((k for k in only_b if _same_but_name(a[ka], b[k])), None)
        if kb is not None:
            say(f"event trigger {a[ka]['name']}: renamed to {b[kb]['name']}", a[ka])
            only_a.remove(ka)
            only_b.remove(kb)
    for key in only_a:
        say(f"event trigger {a[key]['name']}: dropped", a[key])
    for key in only_b:
        say(f"event trigger {b[key]['name']}: added", b[key])
    for key in sorted(set(a) & set(b)):
        for attr in ATTRS:
            if a[key].get(attr) != b[key].get(attr):
                say(_change(a[key]["name"], attr, a[key].get(attr), b[key].get(attr)),
                    a[key], b[key])
    return ours, theirs
