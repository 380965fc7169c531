"""The files an option names (--prom-file, --junit, --html, --out). Each is checked before any
work starts, and a write that fails anyway is one line naming the option (exit 2): a drill
that ran is not reported as an internal error (exit 3) because its JUnit file could not be
written, and a path through a file is not '[Errno 17] File exists'."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from spectral.errors import UsageError


def check_writable(flag: str, path: Path | None) -> None:
    """Refuse a path that cannot become a file: a folder, or one under a file or a folder
    that cannot be written. Missing folders are fine (the writer makes them)."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a folder; name a file")
    for folder in (path.parent, *path.parent.parents):
        if not folder.exists():
            continue
        if not folder.is_dir():
            raise UsageError(f"{flag} {path}: {folder} is not a folder")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UsageError(f"{flag} {path}: the folder {folder} cannot be written")
        return


@contextlib.contextmanager
def writing(flag: str, path: Path) -> Iterator[None]:
    """Turn a failed write of `path` into one line naming `flag`."""
    try:
        yield
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot be written: {exc.strerror or exc}") from None
