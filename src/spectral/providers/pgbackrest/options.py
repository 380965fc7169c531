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
        kind, repo = given.get("type", "full"), given.get("repo")
        if kind not in ("full", "diff", "incr"):
            raise UsageError(f"--type {kind!r}: expected full, diff or incr")
        if repo is not None and not (isinstance(repo, int) and 1 <= repo <= self.repositories):
            raise UsageError(f"--repo {repo}: this environment has {self.repositories} "
                             f"repositories")
        process_max = given.get("process_max")
        if process_max is not None and not (isinstance(process_max, int)
                                            and 1 <= process_max <= 64):
            raise UsageError(f"--process-max {process_max}: expected 1 to 64")
        return dict(given)


def backup_args(options: Options) -> list[str]:
    """`pgbackrest backup`'s options for parsed ones (pure)."""
    args = [f"--type={options.get('type', 'full')}"]
    if options.get("repo") is not None:
        args.append(f"--repo={options['repo']}")
    if options.get("process_max") is not None:
        args.append(f"--process-max={options['process_max']}")
    return args
