"""PostgreSQL refuses to run as root. When we are root, servers and the tools that write their
files run as an unprivileged system user, and the directories they use are owned by it."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from functools import cache
from pathlib import Path

from spectral.errors import ClusterError
from spectral.runner import RunAs

DEFAULT_SERVER_USER = "spectral"


@cache
def server_identity() -> RunAs | None:
    """The identity servers run as: None when we are not root (they run as us)."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("SPECTRAL_SERVER_USER", DEFAULT_SERVER_USER)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        _create_system_user(name)
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0:
        raise ClusterError(f"SPECTRAL_SERVER_USER {name!r} is root; PostgreSQL refuses to run "
                           f"as root")
    return RunAs(user=name, uid=entry.pw_uid, gid=entry.pw_gid, home=entry.pw_dir)


def _create_system_user(name: str) -> None:
    useradd = shutil.which("useradd")
    if useradd is None:
        raise ClusterError(f"running as root needs an unprivileged user {name!r} for PostgreSQL, "
                           f"and useradd is not available to create it")
    subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
        check=True, capture_output=True, timeout=30)


def make_owned_dir(path: Path, mode: int = 0o700) -> Path:
    """Create `path` (and parents) and give it to the server user with `mode`."""
    path.mkdir(parents=True, exist_ok=True)
    ident = server_identity()
    if ident is not None:
        os.chown(path, ident.uid, ident.gid)
    path.chmod(mode)
    return path


def give_to_server(path: Path) -> None:
    """Hand a file or tree the tool wrote over to the server user."""
    ident = server_identity()
    if ident is None:
        return
    os.chown(path, ident.uid, ident.gid, follow_symlinks=False)
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(Path(root) / name, ident.uid, ident.gid, follow_symlinks=False)


def check_reachable(path: Path) -> None:
    """Fail clearly when the server user cannot traverse to `path` (e.g. it is under /root)."""
    ident = server_identity()
    if ident is None:
        return
    for parent in reversed(path.resolve().parents):
        st = parent.stat()
        if st.st_uid == ident.uid:
            ok = bool(st.st_mode & stat.S_IXUSR)
        elif st.st_gid == ident.gid:
            ok = bool(st.st_mode & stat.S_IXGRP)
        else:
            ok = bool(st.st_mode & stat.S_IXOTH)
        if not ok:
            raise ClusterError(
                f"the PostgreSQL server user {ident.user!r} cannot reach {path}: {parent} is mode "
                f"{stat.S_IMODE(st.st_mode):o}",
                hint="set state_dir to a directory outside it, e.g. under /var/lib or /srv")
