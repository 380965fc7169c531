"""durable.WriteBehind: a copy's file system written out while the copy is made (a local
backup's pg_basebackup), so that the sync after it has little left to do; a write-back error
it is told of is raised when the copy is done, never swallowed."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from spectral import durable
from spectral.durable import WriteBehind
from spectral.waits import wait_until


def test_the_real_syncfs_runs_on_the_folder_while_it_is_written(tmp_path: Path) -> None:
    assert durable._syncfs() is not None     # Linux: glibc has syncfs()
    with WriteBehind(tmp_path, interval=0.01) as wb:
        (tmp_path / "file").write_bytes(b"x" * 65536)
        wait_until(lambda: wb.syncs >= 2, timeout=30, what="two syncfs() calls")
    assert wb.error is None


def _fake(calls: list[int], fail: bool = False) -> Callable[[], Callable[[int], None]]:
    def call(fd: int) -> None:
        calls.append(fd)
        if fail:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
    return lambda: call


def test_a_write_back_error_is_raised_when_the_copy_is_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(durable, "_syncfs", _fake(calls, fail=True))
    with pytest.raises(OSError, match=f"syncfs {tmp_path}: Input/output error") as raised, \
            WriteBehind(tmp_path, interval=0.01):
        wait_until(lambda: calls, timeout=30, what="a syncfs() call")
    assert raised.value.errno == errno.EIO
    assert len(calls) == 1                    # it stops at the first error
    with pytest.raises(OSError):
        os.fstat(calls[0])                    # and its descriptor is closed


def test_an_error_of_the_copy_itself_is_not_hidden_by_one_of_write_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(durable, "_syncfs", _fake(calls, fail=True))
    with pytest.raises(KeyError), WriteBehind(tmp_path, interval=0.01):
        wait_until(lambda: calls, timeout=30, what="a syncfs() call")
        raise KeyError("the copy failed")


def test_without_syncfs_it_does_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(durable, "_syncfs", lambda: None)
    with WriteBehind(tmp_path, interval=0.01) as wb:
        (tmp_path / "file").write_text("x")
    assert wb.syncs == 0 and wb.error is None
