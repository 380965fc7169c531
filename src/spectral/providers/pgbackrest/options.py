"""pgBackRest's backup options, declared by it: the backup type (full, diff, incr), the
repository to back up into and the processes for a backup or a restore."""

from __future__ import annotations

from spectral.errors import UsageError
from spectral.providers.capabilities import Options, refuse_options


class PgBackRestOptions:
    def __init__(self, who: str, repositories: int) -> None:
        self.who, self.repositories = who, repositories

    def declared(self) -> dict[str, str]:
        return {"type": "full, diff or incr", "repo": "the repository to back up into",
                "process_max": "processes for this backup or restore"}

    def parse(self, given: Options, *, restore: bool = False) -> Options:
        declared = self.declared()
        refuse_options(given, {"process_max": declared["process_max"]} if restore else declared,
                       self.who)
        kind = given.get("type", "full")
        if kind not in ("full", "diff", "incr"):
            raise UsageError(f"--type {kind!r}: expected full, diff or incr")
        repo = _number(given, "repo", 1, self.repositories,
                       f"this environment has {self.repositories} repositories")
        process_max = _number(given, "process_max", 1, 64, "expected 1 to 64")
        return {k: v for k, v in {**given, "repo": repo, "process_max": process_max}.items()
                if v is not None}


def _number(given: Options, name: str, low: int, high: int, expected: str) -> int | None:
    """An integer option, given as a number or as text (--option name=4)."""
    value = given.get(name)
    if value is None:
        return None
    number = value if isinstance(value, int) else int(value) if isinstance(value, str) and \
        value.strip().isdigit() else None
    if number is None or not low <= number <= high:
        raise UsageError(f"--{name.replace('_', '-')} {value}: {expected}")
    return number


def backup_args(options: Options) -> list[str]:
    """`pgbackrest backup`'s options for parsed ones (pure)."""
    args = [f"--type={options.get('type', 'full')}"]
    if options.get("repo") is not None:
        args.append(f"--repo={options['repo']}")
    if options.get("process_max") is not None:
        args.append(f"--process-max={options['process_max']}")
    return args
