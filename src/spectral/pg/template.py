"""initdb once, copy many times: with SPECTRAL_INITDB_TEMPLATES naming a folder, the result of
each distinct initdb (same binaries, same options) is kept there and copied into every new data
directory that asks for the same, at a tenth of initdb's cost. Meant for test suites, which
initialise hundreds of identical clusters; unset, initdb runs every time.

A superuser password is never kept in a template: the template is made with a throwaway one,
and each copy gets its own through a single-user backend (the password on its standard input,
never on a command line)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path

from spectral.pg.binaries import PgBinaries
from spectral.pg.osuser import give_to_server, make_owned_dir, server_identity
from spectral.runner import run

ENV = "SPECTRAL_INITDB_TEMPLATES"


def folder() -> Path | None:
    value = os.environ.get(ENV, "")
    return Path(value) if value else None


def _key(bins: PgBinaries, argv: list[str], data_dir: Path, pwfile: Path | None) -> str:
    shape = ["<data>" if a == str(data_dir) else "<pw>" if pwfile and a.endswith(str(pwfile))
             else a for a in argv]
    text = json.dumps([bins.version, str(bins.bin_dir), shape])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def initialise(bins: PgBinaries, argv: list[str], data_dir: Path, superuser: str,
               pwfile: Path | None) -> bool:
    """Fill the empty `data_dir` from the template for `argv`, making the template first if
    there is none; False when no template folder is set (the caller runs initdb)."""
    root = folder()
    if root is None:
        return False
    template = root / _key(bins, argv, data_dir, pwfile)
    if not (template / "PG_VERSION").exists():
        _make(bins, argv, data_dir, pwfile, template)
    run(["cp", "-a", f"{template}/.", str(data_dir)], timeout=300, run_as=server_identity())
    if pwfile is not None:
        _set_password(bins, data_dir, superuser, pwfile.read_text().strip())
    return True


def _make(bins: PgBinaries, argv: list[str], data_dir: Path, pwfile: Path | None,
          template: Path) -> None:
    """initdb into a private folder, then renamed into place (two makers at once: one wins)."""
    make_owned_dir(template.parent, 0o755)
    work = make_owned_dir(template.parent / f".{template.name}.{os.getpid()}", 0o755)
    data = make_owned_dir(work / "data")
    throwaway = work / "pw"
    args = [str(data) if a == str(data_dir) else a for a in argv]
    if pwfile is not None:
        throwaway.write_text(secrets.token_urlsafe(24))
        give_to_server(throwaway)
        args = [f"--pwfile={throwaway}" if a == f"--pwfile={pwfile}" else a for a in args]
    try:
        run(args, timeout=300, run_as=server_identity(), cwd=data)
        with contextlib.suppress(OSError):   # another maker was first: theirs is as good
            data.rename(template)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _set_password(bins: PgBinaries, data_dir: Path, superuser: str, password: str) -> None:
    role = '"' + superuser.replace('"', '""') + '"'
    literal = "'" + password.replace("'", "''") + "'"
    run([bins.path("postgres"), "--single", "-D", str(data_dir), "-c", "log_statement=none",
         "postgres"], timeout=120, run_as=server_identity(),
        input_text=f"ALTER ROLE {role} PASSWORD {literal};\n")
