"""Copying a backup into a new data directory: parallel, in-kernel (sendfile/copy_file_range
through shutil.copyfile), owned by the server user, with progress in bytes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from spectral.pg.osuser import server_identity

Progress = Callable[[int], None]


def copy_tree(src: Path, dest: Path, *, progress: Progress | None = None, workers: int = 4,
              skip: tuple[str, ...] = ()) -> int:
    """Copy `src` into the empty or new directory `dest`; returns bytes copied."""
    ident = server_identity()
    files: list[tuple[Path, Path, int]] = []
    dest.mkdir(parents=True, exist_ok=True)
    for root, dirs, names in os.walk(src):
        rel = Path(root).relative_to(src)
        for d in dirs:
            target = dest / rel / d
            source = Path(root) / d
            if source.is_symlink():
                os.symlink(os.readlink(source), target)
                continue
            target.mkdir(mode=0o700, exist_ok=True)
        for name in names:
            if rel == Path(".") and name in skip:
                continue
            source = Path(root) / name
            if source.is_symlink():
                os.symlink(os.readlink(source), dest / rel / name)
                continue
            files.append((source, dest / rel / name, source.stat().st_size))
    files.sort(key=lambda f: -f[2])

    def one(item: tuple[Path, Path, int]) -> int:
        source, target, size = item
        shutil.copyfile(source, target)
        os.chmod(target, 0o600)
        if ident is not None:
            os.chown(target, ident.uid, ident.gid)
        if progress:
            progress(size)
        return size

    with ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(one, files))
    for root, dirs, _names in os.walk(dest):
        for d in [*dirs, "."]:
            path = Path(root) / d
            if path.is_symlink():
                continue
            os.chmod(path, 0o700)
            if ident is not None:
                os.chown(path, ident.uid, ident.gid)
    return total
