"""pgBackRest's own commands, run one way: as the server user, with the environment's
configuration file and stanza, the secrets in the environment, a timeout, and pgBackRest's
error line as the message when it fails."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spectral.errors import CommandError, CouldNotVerify, UsageError
from spectral.pg.osuser import server_identity
from spectral.runner import Completed, run

BINARY = "pgbackrest"
ERROR_RE = re.compile(r"ERROR: \[(?P<code>\d+)\]: (?P<msg>.*)")
# The newest PostgreSQL major each pgBackRest release reads (its release notes: 2.39 added 15,
# 2.46 added 16, 2.53.1 17, 2.55.0 18); a release before 2.39 is not supported here.
SUPPORT = ((2, 55, 0, 18), (2, 53, 1, 17), (2, 46, 0, 16), (2, 39, 0, 15))


def newest_major(release: str) -> int | None:
    parts = [int(p) for p in re.findall(r"\d+", release)[:3]] + [0, 0, 0]
    have = tuple(parts[:3])
    return next((major for *since, major in SUPPORT if have >= tuple(since)), None)


def installed() -> str | None:
    return shutil.which(BINARY)


def version() -> str:
    if installed() is None:
        raise UsageError("pgBackRest is not installed (on Debian, as root: apt-get install "
                         "pgbackrest; `python3 dev.py test` installs it)")
    out = run([BINARY, "version"], timeout=30).stdout.strip()
    return out.split()[-1] if out else "?"


def check_supports(major: int) -> None:
    """Refuse a PostgreSQL major this pgBackRest cannot read, before it fails half-way."""
    ver = version()
    top = newest_major(ver)
    if top is None:
        raise UsageError(f"pgBackRest {ver} is older than 2.39, which spectral needs")
    if major > top:
        raise UsageError(f"pgBackRest {ver} supports PostgreSQL up to {top}; this environment's "
                         f"binaries are PostgreSQL {major}", hint="pg_bin_dir = "
                         "\"/usr/lib/postgresql/15/bin\", or a newer pgBackRest (see the README)")


@dataclass
class PgBackRest:
    conf_file: Path
    stanza: str
    env: dict[str, str] = field(default_factory=dict)   # the secrets (never argv or disk)
    # given to every command before the configuration file's (an attached stanza's: spectral's
    # own lock, log and spool paths, so nothing of the team's is written)
    options: tuple[str, ...] = ()
    # and to the commands that take them (pgBackRest refuses an option a command does not
    # take: `pgbackrest help <command>` lists them)
    per_command: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def run(self, command: str, *args: str, timeout: float = 3600.0,
            check: bool = True) -> Completed:
        if installed() is None:
            version()   # raises with the install hint
        argv = [BINARY, f"--config={self.conf_file}", f"--stanza={self.stanza}", *self.options,
                *self.per_command.get(command, ()), command, *args]
        try:
            return run(argv, timeout=timeout, check=check, env=self.env,
                       run_as=server_identity(), forks=True)
        except CommandError as exc:
            raise CouldNotVerify(f"pgbackrest {command}: {describe_failure(exc)}") from None

    def info(self) -> dict[str, Any]:
        """`pgbackrest info --output=json` for the stanza (an empty dict before stanza-create)."""
        out = self.run("info", "--output=json", timeout=600).stdout
        try:
            doc = json.loads(out)
        except ValueError:
            raise CouldNotVerify(f"pgbackrest info printed no JSON: {out[:200]!r}") from None
        stanzas = [s for s in doc if isinstance(s, dict) and s.get("name") == self.stanza]
        return stanzas[0] if stanzas else {}

    def repo_ls(self, path: str, repo: int) -> dict[str, Any]:
        res = self.run("repo-ls", "--recurse", "--output=json", f"--repo={repo}", path,
                       timeout=600)
        try:
            listing: dict[str, Any] = json.loads(res.stdout or "{}")
        except ValueError:
            raise CouldNotVerify(f"pgbackrest repo-ls printed no JSON: {res.stdout[:200]!r}") \
                from None
        return listing

    def archive_get(self, name: str, dest: Path) -> bool:
        """Fetch one WAL file into `dest`; False when no repository has it."""
        res = self.run("archive-get", name, str(dest), timeout=600, check=False)
        if res.returncode == 0:
            return True
        if res.returncode == 1:   # "unable to find ... in the archive"
            return False
        raise CouldNotVerify(f"pgbackrest archive-get {name}: "
                             f"{first_error(res.stderr) or res.stderr.strip()[-300:]}")


def first_error(text: str) -> str | None:
    m = ERROR_RE.search(text)
    return f"{m.group('msg').strip()} (pgBackRest error {m.group('code')})" if m else None


def describe_failure(exc: CommandError) -> str:
    if exc.timed_out:
        return "timed out and was stopped"
    return first_error(exc.stderr) or exc.message
