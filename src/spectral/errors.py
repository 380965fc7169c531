"""Domain errors and the exit codes they map to. The core raises; only the CLI exits."""

from __future__ import annotations

import re
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1
    USAGE = 2
    COULD_NOT_VERIFY = 3


class SpectralError(Exception):
    """Base of every error the tool reports as one line; `exit_code` says how the CLI exits."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(SpectralError):
    """The configuration file or a secret reference is invalid."""


class UsageError(SpectralError):
    """The command was called with arguments that cannot work."""


class ClusterError(SpectralError):
    """A PostgreSQL cluster could not be created, started, reached or stopped."""


class ConnectError(SpectralError):
    """A database could not be reached."""


class RefusedError(SpectralError):
    """A destructive action was refused (not confirmed, or the data is not regenerable)."""


class CheckFailed(SpectralError):
    exit_code = ExitCode.CHECK_FAILED


class CouldNotVerify(SpectralError):
    exit_code = ExitCode.COULD_NOT_VERIFY


class BackupDamaged(CheckFailed):
    """A backup proven damaged: a file whose checksum or size does not match its manifest, a
    manifest that does not match itself. A drill of it FAILs (exit 1) naming the backup and
    the files; a backup that cannot be read at all stays CouldNotVerify (exit 3)."""

    def __init__(self, backup_id: str, problems: list[str], *, hint: str | None = None) -> None:
        super().__init__(f"backup {backup_id} is damaged and will not be restored: "
                         f"{'; '.join(problems)}", hint=hint)
        self.backup_id, self.problems = backup_id, list(problems)


class CommandError(SpectralError):
    """A program run through `spectral.runner.run` failed or timed out."""

    exit_code = ExitCode.COULD_NOT_VERIFY

    def __init__(self, argv: list[str], returncode: int | None, stderr: str, *,
                 timed_out: bool = False) -> None:
        from spectral.redact import redact

        name = argv[0].rsplit("/", 1)[-1] if argv else "?"
        lines = stderr.strip().splitlines()
        # the first error is the cause; what follows is its consequences and the clean-up
        first = next((i for i, ln in enumerate(lines)
                      if re.search(r"\b(error|ERROR|FATAL|PANIC)\b", ln)), None)
        if first is None:
            last = redact(lines[-1]) if lines else ""
        else:   # with what PostgreSQL says of it: the row, the object, the statement's line
            said = [lines[first].strip()] + [
                ln.strip() for ln in lines[first + 1:first + 4]
                if ln.strip().startswith(("DETAIL:", "CONTEXT:", "HINT:", "LINE "))]
            last = redact("; ".join(said))
        if timed_out:
            msg = f"{name} timed out and was stopped"
        else:
            msg = f"{name} exited with code {returncode}"
        super().__init__(f"{msg}: {last}" if last else msg)
        self.argv = argv
        self.returncode = returncode
        self.stderr = redact(stderr)
        self.timed_out = timed_out


def shown(name: str, limit: int = 80) -> str:
    """A user-given name (a table, a backup id) as a one-line message can show it: control
    characters escaped, cut at `limit`."""
    text = name if name.isprintable() else repr(name)[1:-1]
    return text if len(text) <= limit else text[:limit] + "..."
