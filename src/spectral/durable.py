"""Durable writes: whole files via temp file, fsync, rename, fsync of the directory;
appends with flush and fsync; a large copy written out while it is made (WriteBehind)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock held for the block (writers of one ledger or catalog)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def append_durable(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def rename_durable(src: Path, dst: Path) -> None:
    """A rename that is on disk when this returns: the folder (both folders) fsynced."""
    src.rename(dst)
    fsync_dir(dst.parent)
    if src.parent != dst.parent:
        fsync_dir(src.parent)


class WriteBehind:
    """Write a folder's file system out while a program fills the folder: one syncfs() every
    `interval` seconds, from a thread, on a descriptor opened before the program starts.
    The sync that makes the copy durable afterwards then finds little left to write, instead
    of all of it at once after the copy (Linux starts writing a file's pages of its own only
    30 s after they were written, or when a tenth of memory is dirty).

    It adds nothing to what proves the copy durable (that sync, after the copy, still does);
    it can only find a write-back error sooner, which it raises as that sync would: the
    descriptor, opened first, is told of every error since (syncfs() reports write-back errors
    on Linux 5.8+). Without syncfs() (not Linux) it does nothing."""

    def __init__(self, folder: Path, interval: float = 0.2) -> None:
        self.folder, self.interval = folder, interval
        self.stop = threading.Event()
        self.error: OSError | None = None
        self.syncs = 0
        self._fd = -1
        self._thread: threading.Thread | None = None

    def __enter__(self) -> WriteBehind:
        syncfs = _syncfs()
        if syncfs is not None:
            self._fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
            self._thread = threading.Thread(target=self._run, args=(syncfs,), daemon=True,
                                            name="write-behind")
            self._thread.start()
        return self

    def _run(self, syncfs: Callable[[int], None]) -> None:
        while not self.stop.wait(self.interval):
            try:
                syncfs(self._fd)
            except OSError as exc:
                self.error = OSError(exc.errno, f"syncfs {self.folder}: {exc.strerror}")
                return
            self.syncs += 1

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self._thread is not None:
            self._thread.join()
            os.close(self._fd)
        if self.error is not None and exc[0] is None:
            raise self.error


def _syncfs() -> Callable[[int], None] | None:
    """libc's syncfs(2), raising OSError; None where there is none."""
    import ctypes  # here: every command imports this module, few write a copy

    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None

    def call(fd: int) -> None:
        if fn(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
    return call
