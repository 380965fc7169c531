#!/usr/bin/env python3
"""Set-up and entry point for a fresh machine: needs only Python 3.11+ and the package registries.

    python3 dev.py demo   # create .venv, install spectral, run the main job on the embedded default
    python3 dev.py test   # create .venv with the test tools; run ruff, mypy and the tests
    python3 dev.py test --fast   # the same, but only the tests that start no PostgreSQL server

Extra arguments after the verb are passed on (to `spectral demo` or to pytest).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"


def _stamp() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_venv(dev: bool) -> None:
    """Create .venv and install the project (editable): the demo needs only the package and its
    runtime dependencies; the tests add the test tools. Skipped when nothing changed."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be started by an older python3
        sys.exit(f"spectral needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    stamp_file = VENV / ".spectral-installed"
    have = stamp_file.read_text() if stamp_file.exists() else ""
    if have in (_stamp() + ":dev", _stamp() + ("" if not dev else ":dev")):
        return
    if not (BIN / "python").exists():
        print("dev.py: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True, clear=False).create(VENV)
    what = "spectral and its test tools" if dev else "spectral"
    print(f"dev.py: installing {what} into .venv", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "-e", f"{ROOT}[dev]" if dev else str(ROOT)], check=True)
    stamp_file.write_text(_stamp() + (":dev" if dev else ""))


# Debian packages the tests use: Chromium (the HTML report, headless), pgBackRest (2.45 in
# Debian 12) and the PostgreSQL 15 it supports. Installed when we can (root with apt-get);
# otherwise the tests that need them are skipped and say why. eatmydata makes fsync a no-op for
# the test run (and the servers and tools it starts): a test's clusters are thrown away, and a
# kill -9 (which the tests do) leaves the page cache intact, so only a power loss could tell the
# difference; without it every initdb, checkpoint and backup waits for the disk.
SYSTEM_PACKAGES = {"chromium": "/usr/bin/chromium", "pgbackrest": "/usr/bin/pgbackrest",
                   "postgresql-15": "/usr/lib/postgresql/15/bin/postgres",
                   "eatmydata": "/usr/bin/eatmydata", "prometheus": "/usr/bin/promtool"}
# postgresql-common would create and start a "main" cluster when postgresql-15 is installed;
# the tests start their own clusters and nothing else may be left running
NO_MAIN_CLUSTER = Path("/etc/postgresql-common/createcluster.conf")
# promtool is all the tests use of Prometheus: not its recommended node exporter
NO_RECOMMENDS = {"prometheus"}


def ensure_system_packages() -> None:
    import shutil

    missing = [p for p, path in SYSTEM_PACKAGES.items() if not Path(path).exists()]
    if not missing or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    print(f"dev.py: installing Debian's {', '.join(missing)} for the tests", flush=True)
    if "postgresql-15" in missing and not NO_MAIN_CLUSTER.exists():
        NO_MAIN_CLUSTER.parent.mkdir(parents=True, exist_ok=True)
        NO_MAIN_CLUSTER.write_text("create_main_cluster = false\n")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    plain = [p for p in missing if p not in NO_RECOMMENDS]
    bare = [p for p in missing if p in NO_RECOMMENDS]
    steps = [["apt-get", "update", "-qq"]]
    steps += [["apt-get", "install", "-y", "-qq", *plain]] if plain else []
    steps += [["apt-get", "install", "-y", "-qq", "--no-install-recommends", *bare]] if bare else []
    # Debian starts a package's service at install unless policy-rc.d says no (a Prometheus
    # server, a PostgreSQL cluster): nothing may be left running, so it says no meanwhile
    guard = Path("/usr/sbin/policy-rc.d")
    ours = not guard.exists()
    if ours:
        guard.write_text("#!/bin/sh\n# written by spectral's dev.py while it installs\nexit 101\n")
        guard.chmod(0o755)
    try:
        for argv in steps:
            subprocess.run(argv, check=False, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=900)
    finally:
        if ours:
            guard.unlink(missing_ok=True)


def _no_fsync() -> list[str]:
    path = Path(SYSTEM_PACKAGES["eatmydata"])
    return [str(path)] if path.exists() and not os.environ.get("SPECTRAL_TEST_FSYNC") else []


def _workers(rest: list[str]) -> list[str]:
    """Three test processes (pytest-xdist) on this 2-core machine, unless the arguments say how
    many: most of a test's time is PostgreSQL starting, recovering and stopping, and polls
    waiting for it, which leave a core idle (the suite on a fresh clone: 11 min 32 s with two,
    9 min 1 s with three in session 9). Four were slower in session 12 (748 tests: pytest
    12 min 55 s with three, 14 min 34 s with four; bench/RESULTS.md)."""
    if any(a.startswith(("-n", "--numprocesses", "--dist")) or a == "no:xdist" for a in rest):
        return []
    return ["-n", os.environ.get("SPECTRAL_TEST_WORKERS", "3"), "--dist", "worksteal"]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test"}:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    verb, rest = argv[0], argv[1:]
    ensure_venv(dev=verb == "test")
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    # every `spectral` process the tests start would compile the sources again without .pyc
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if verb == "demo":
        return subprocess.run([str(BIN / "spectral"), "demo", *rest], env=env, cwd=ROOT).returncode
    if "--fast" in rest:   # the inner loop: no server, no system packages (tests/conftest.py)
        rest = ["-m", "not server", *[a for a in rest if a != "--fast"]]
        env["SPECTRAL_TEST_FAST"] = "1"
    else:
        ensure_system_packages()
    steps = [
        [str(BIN / "ruff"), "check", "src", "tests", "bench", "dev.py"],
        [str(BIN / "mypy")],
        [*_no_fsync(), str(BIN / "python"), "-m", "pytest", *_workers(rest), *rest],
    ]
    for step in steps:
        shown = " ".join([Path(step[0]).name, *step[1:]])
        print(f"dev.py: {shown}", flush=True)
        code = subprocess.run(step, env=env, cwd=ROOT).returncode
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
