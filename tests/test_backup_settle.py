"""A local backup is synced to disk by one syncfs() while pg_verifybackup reads it back
(providers/local/backup.py `settle`), not by pg_basebackup's fsync of every file: a copy
damaged after pg_basebackup wrote it is still caught and recorded as failed, a sync that fails
leaves no copy and no catalog entry, and the next backup is whole."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import local_provider
from spectral.errors import CheckFailed, CommandError, CouldNotVerify
from spectral.pg.binaries import PgBinaries
from spectral.providers.base import Verification
from spectral.providers.local import backup as backup_mod
from spectral.providers.local.provider import LocalProvider
from spectral.recovery_target import LatestTarget


def test_the_copy_is_not_synced_file_by_file_but_once(tmp_path: Path, bins: PgBinaries) -> None:
    argv = backup_mod.basebackup_argv(bins, "host=/s", tmp_path / "b", "spectral x")
    assert "--no-sync" in argv
    (tmp_path / "b" / "pg_tblspc").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "b" / "pg_tblspc" / "16400").symlink_to(tmp_path / "elsewhere")
    assert backup_mod.sync_argv(tmp_path / "b") == [
        "sync", "--file-system", str(tmp_path / "b"), str(tmp_path / "elsewhere")]


@pytest.fixture
def env(work_dir: Path, bins: PgBinaries) -> Iterator[LocalProvider]:
    with local_provider(work_dir, bins, "ledger") as provider:
        yield provider


def _largest_file(backup_dir: Path) -> Path:
    return max((p for p in (backup_dir / "base").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)


def test_damage_after_the_copy_is_caught_and_a_failed_sync_leaves_nothing(
        env: LocalProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    real_copy = backup_mod._copy

    def copy_then_damage(*args: Any) -> None:
        real_copy(*args)
        victim = _largest_file(args[2])
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0xFF
        victim.write_bytes(bytes(data))

    monkeypatch.setattr(backup_mod, "_copy", copy_then_damage)
    with pytest.raises(CheckFailed, match="failed verification"):
        env.backup()
    [damaged] = env.backups()
    assert damaged.verification is Verification.FAILED
    assert "checksum mismatch" in damaged.verification_detail
    with pytest.raises(CouldNotVerify, match="no verified base backup"):
        env.restore(LatestTarget())

    monkeypatch.setattr(backup_mod, "_copy", real_copy)
    monkeypatch.setattr(backup_mod, "sync_argv",
                        lambda d: ["sync", "--file-system", str(d / "not-there")])
    with pytest.raises(CommandError, match="not-there"):
        env.backup()
    assert [b.id for b in env.backups()] == [damaged.id]    # the catalog as it was
    assert sorted(p.name for p in env.repo.base.iterdir()) == [damaged.id]   # no copy left

    monkeypatch.undo()
    whole = env.backup()
    assert whole.verification is Verification.VERIFIED
    assert (env.repo.backup_dir(whole.id) / "backup_manifest").is_file()
    assert not list(env.repo.base.glob("*.partial"))
