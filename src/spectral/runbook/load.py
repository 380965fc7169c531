"""Finding and reading the team's runbook file: the configuration's `runbook` key, else a
runbook.toml beside the configuration, else none (the neutral texts). Whatever is wrong with
the file is one line naming the file and the key (exit 2)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from spectral.errors import ConfigError
from spectral.runbook.model import FIGURES, NEUTRAL, Runbook, unknown_names

if TYPE_CHECKING:
    from spectral.config.models import SpectralConfig

DEFAULT_FILE = "runbook.toml"
# Far more than any team's words; a file beyond it is a mistake, not a runbook.
MAX_BYTES = 1024 * 1024


def runbook_path(config: SpectralConfig) -> Path | None:
    """The file the configuration names (it must exist), else runbook.toml beside it."""
    where = config.source or "the configuration"
    if config.runbook is not None:
        path = config.runbook if config.runbook.is_absolute() else \
            config.base_dir / config.runbook
        if not path.exists():
            raise ConfigError(f"{where}: runbook: no such file {path}")
    else:
        path = config.base_dir / DEFAULT_FILE
        if not path.exists():
            return None
    if not path.is_file():
        raise ConfigError(f"{where}: runbook: {path} is not a file")
    return path


def load_runbook(config: SpectralConfig) -> Runbook:
    path = runbook_path(config)
    return NEUTRAL if path is None else read_runbook(path)


def read_runbook(path: Path) -> Runbook:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_BYTES // 1024} KB: not a runbook file")
        data = tomllib.loads(raw.decode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the runbook file: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        book = Runbook.model_validate({**data, "source": path})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_problem(exc)}") from None
    problems = _playbook_problems(book) + _name_problems(book)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(f"{path}: {problems[0]}{more}")
    return book


def _problem(exc: ValidationError) -> str:
    errors = exc.errors()
    err: Any = errors[0]
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown key (check its spelling)"
    elif err["type"] not in ("value_error",) and "input" in err:
        msg = f"{msg} (got {err['input']!r})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{key}: {msg}{more}"


def _playbook_problems(book: Runbook) -> list[str]:
    from spectral.errors import UsageError
    from spectral.playbooks.catalog import OUTLINES, outline

    out = []
    for name, texts in book.playbooks.items():
        try:
            keys = outline(name).manual_keys()
        except UsageError:
            out.append(f"playbooks.{name}: not a playbook (known: "
                       f"{', '.join(p.name for p in OUTLINES)})")
            continue
        out += [f"playbooks.{name}.manual.{k}: not a manual step of {name} (its manual "
                f"steps: {', '.join(sorted(keys))})" for k in texts.manual if k not in keys]
    return out


def _name_problems(book: Runbook) -> list[str]:
    tools = book.tool_names()
    page = {**tools, **dict.fromkeys(FIGURES, "")}
    out = []
    for texts, known, what in ((book.page_texts(), page, "a tool or a live figure"),
                               (book.step_texts(), tools, "a tool")):
        for key, text in texts.items():
            out += [f"{key}: {{{n}}} is not {what} (known: {', '.join(sorted(known))})"
                    for n in unknown_names(text, known)]
    return out
