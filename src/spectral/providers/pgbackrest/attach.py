"""A team's own pgBackRest stanza, attached read-only (`attach = true`; docs/attach.md).

spectral runs only pgBackRest's reading commands against it: `info`, `repo-ls`,
`archive-get`, `restore` into a throwaway data directory on this host, and `verify` when a
restore fails. Each runs with the team's configuration file as given (never written) and with
spectral's own lock, log and spool paths on the command line, which take precedence over the
file's, so nothing of the team's is written either on this host. The repository and the live
server are never changed (tests/test_attach_pgbackrest.py hashes both around every command)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from spectral.errors import ConfigError, CouldNotVerify
from spectral.pg.binaries import find_binaries
from spectral.pg.osuser import make_owned_dir
from spectral.providers.pgbackrest.command import PgBackRest
from spectral.providers.pgbackrest.repo import PgBackRestRepository
from spectral.providers.pgbackrest.restore import PgBackRestRestorer
from spectral.providers.pgbackrest.settings import AttachConfig, AttachedPgBackRestSettings

if TYPE_CHECKING:
    from spectral.environment import Environment
    from spectral.pg.binaries import PgBinaries
    from spectral.providers.attached.provider import AttachedProvider

MISSING = (1, 3)    # pgbackrest info's status codes: missing stanza path, missing stanza data
REPO_KEY_RE = re.compile(r"^\s*repo(?P<n>[1-9][0-9]*)-[a-z0-9-]+\s*=", re.MULTILINE)


def repositories_in(text: str) -> int:
    """How many repositories a pgbackrest.conf names (repo1 when it names none; pure)."""
    return max((int(m.group("n")) for m in REPO_KEY_RE.finditer(text)), default=1)


class PgBackRestAttached:
    """`AttachedRepository` (providers/attached/strategy.py) over a team's stanza."""

    kind = "pgbackrest"

    def __init__(self, cfg: AttachConfig, state_dir: Path, bins: PgBinaries) -> None:
        self.cfg, self.bins = cfg, bins
        self.root = state_dir / "pgbackrest"
        # said by check(), before anything reads the repository: commands that do not (dr
        # teardown of what an earlier run left) still work with a file that cannot be read
        self.unreadable: str | None = None
        try:
            text = cfg.config.read_text()
        except OSError as exc:
            text, self.unreadable = "", str(exc.strerror)
        lock = f"--lock-path={self.root / 'lock'}"
        self.tool = PgBackRest(
            cfg.config, cfg.stanza,
            options=(f"--log-path={self.root / 'log'}", "--log-level-file=off"),
            per_command={"info": (lock,), "restore": (lock,),
                         "archive-get": (lock, "--no-archive-async")})   # no spool used
        self.repo = PgBackRestRepository(self.root / "mirror", self.tool,
                                         repositories_in(text))
        self._checked = False

    def describe(self) -> str:
        return f"pgBackRest stanza {self.cfg.stanza!r} ({self.cfg.config})"

    def check(self) -> None:
        if self._checked:
            return
        if self.unreadable is not None:
            raise ConfigError(f"pgbackrest.config {str(self.cfg.config)!r} cannot be read: "
                              f"{self.unreadable}")
        for d in (self.root, self.root / "lock", self.root / "log"):
            make_owned_dir(d, 0o750)
        info = self.tool.info()
        if not info:
            raise ConfigError(f"{self.describe()}: pgbackrest info does not know this stanza "
                              f"(check pgbackrest.stanza and the repositories the file names)")
        status = info.get("status") or {}
        if status.get("code") in MISSING:
            raise ConfigError(f"{self.describe()}: not in the repositories the file names "
                              f"(pgbackrest info: {status.get('message')!r})",
                              hint="check pgbackrest.stanza and pgbackrest.config")
        if status.get("code") not in (0, 2, None):   # 2: no valid backups (said as a window)
            raise CouldNotVerify(f"{self.describe()}: pgbackrest info says "
                                 f"{status.get('message', 'an error')!r}")
        self._checked = True

    def repository(self) -> PgBackRestRepository:
        return self.repo

    def forget(self) -> None:
        self.check()
        self.repo.forget()

    def restorer(self) -> PgBackRestRestorer:
        return PgBackRestRestorer(self.bins, self.repo, self.tool, 1)

    def server_env(self) -> dict[str, str]:
        return {}


def attached_provider(environment: Environment) -> AttachedProvider:
    """The registry's factory for `provider = "pgbackrest"` with `attach = true`."""
    from spectral.providers.attached.provider import AttachedProvider

    settings = environment.config
    assert isinstance(settings, AttachedPgBackRestSettings)
    bins = find_binaries(settings.pg_bin_dir)
    strategy = PgBackRestAttached(settings.pgbackrest, environment.state_dir, bins)
    return AttachedProvider(environment.name, settings.dsn, environment.spectral.base_dir, bins,
                            environment.state_dir, strategy, environment.report)
