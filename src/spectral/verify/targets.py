"""What `dr compare A B` can be given: a fingerprint file, an environment name or a DSN. The
configuration is loaded only when a side needs it (an environment, or two live sides): a
snapshot compared with a DSN, the drill's way, pays nothing for it."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from psycopg.conninfo import conninfo_to_dict

from spectral.errors import UsageError
from spectral.redact import redact
from spectral.refdb import REFERENCE_SCHEMAS
from spectral.verify.content import ScanProgress
from spectral.verify.document import Fingerprint
from spectral.verify.fingerprint import Options, load, options_for, take

if TYPE_CHECKING:
    from spectral.config.models import SpectralConfig

Config = Callable[[], "SpectralConfig"]   # loads (or returns) the configuration when called


def is_file(spec: str) -> bool:
    return spec.endswith(".json") or Path(spec).exists()


def fingerprint_pair(cfg: Config, a: str, b: str, *, schemas: list[str] | None,
                     content: bool, workers: int | None, progress: ScanProgress | None = None
                     ) -> tuple[tuple[Fingerprint, str], tuple[Fingerprint, str]]:
    """Both sides of a comparison. Two live databases are read at the same time (their scans
    overlap their waits); a file on one side decides the schemas and content of the other."""
    if is_file(a) or is_file(b) or a == b:
        file_first = is_file(b) and not is_file(a)
        x, y = (b, a) if file_first else (a, b)
        fx = fingerprint_of(cfg, x, schemas=schemas, content=content, workers=workers,
                            progress=progress)
        first = fx[0]
        fy = fingerprint_of(cfg, y, schemas=schemas or list(first.schemas),
                            content=content or first.content, workers=workers,
                            progress=progress)
        return (fy, fx) if file_first else (fx, fy)
    for spec in (a, b):     # a misspelt file name is said as such, not as a missing --schemas
        if not looks_like_dsn(spec) and spec not in cfg().environments:
            raise _neither(cfg(), spec)
    schemas = schemas or _one_schema_list(cfg(), a, b)   # never a default for one side only
    # two servers on this machine share its cores: each side gets half unless told otherwise
    share = workers or (max(1, len(os.sched_getaffinity(0)) // 2)
                        if _on_this_machine(cfg(), a) and _on_this_machine(cfg(), b) else None)
    with ThreadPoolExecutor(2) as pool:
        fa = pool.submit(fingerprint_of, cfg, a, schemas=schemas, content=content,
                         workers=share, progress=_side("A", progress))
        fb = pool.submit(fingerprint_of, cfg, b, schemas=schemas, content=content,
                         workers=share, progress=_side("B", progress))
        return fa.result(), fb.result()


def _side(label: str, progress: ScanProgress | None) -> ScanProgress | None:
    """Two scans at once: each side's stages named after it, so their bars stay apart."""
    if progress is None:
        return None
    return lambda stage, done, total: progress(f"{label}: {stage}", done, total)


def _one_schema_list(cfg: SpectralConfig, a: str, b: str) -> list[str]:
    """The schemas both live sides are read with: the first environment's."""
    for spec in (a, b):
        if spec in cfg.environments:
            return list(cfg.environments[spec].schemas)
    raise UsageError("comparing two DSNs: say which schemas with --schemas (neither side is "
                     "a configured environment whose schemas could be used)")


def _on_this_machine(cfg: SpectralConfig, spec: str) -> bool:
    """Whether the server behind `spec` runs here (a Unix socket or a loopback address); a DSN
    behind a secret reference is not resolved just to find out (assumed remote)."""
    if spec in cfg.environments:
        from spectral.config.secrets import is_secret_ref

        env = cfg.environments[spec]
        if env.dsn is None:          # a cluster spectral runs: here
            return True
        if is_secret_ref(env.dsn):
            return False
        spec = env.dsn
    try:
        host = str(conninfo_to_dict(spec).get("host") or "")
    except psycopg.Error:
        return False
    return host == "" or host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")


def looks_like_dsn(text: str) -> bool:
    """A URI, or key=value pairs libpq knows (`password=x` alone is one: a DSN that says
    which password and leaves the rest to the defaults and PG* variables)."""
    if "://" in text:
        return True
    if "=" not in text:
        return False
    try:
        return bool(conninfo_to_dict(text))
    except psycopg.Error:   # an unknown keyword, a missing value: a name, not a DSN
        return False


def fingerprint_of(cfg: Config, spec: str, *, schemas: list[str] | None,
                   content: bool, workers: int | None, progress: ScanProgress | None = None
                   ) -> tuple[Fingerprint, str]:
    """Load or take the fingerprint that `spec` names; returns it and a label for output. A
    spec that looks like a DSN is one (no environment is looked up for it)."""
    path = Path(spec)
    if path.suffix == ".json" or path.exists():
        if not path.exists():
            raise UsageError(f"{spec}: no such fingerprint file")
        return load(path), str(path)
    if not looks_like_dsn(spec) and spec in cfg().environments:
        from spectral.environment import open_environment
        from spectral.verify.replica import replica_for

        environment = open_environment(cfg(), spec)
        with environment.database() as dsn:
            opts = options_for(environment.config, content=content, workers=workers,
                               schemas=tuple(schemas) if schemas else None, progress=progress,
                               live=True)
            replica = replica_for(environment.config, dsn, environment.spectral.base_dir)
            return take(replica.dsn if replica else dsn, opts), f"environment {spec}" + (
                " (its replica)" if replica else "")
    if looks_like_dsn(spec):
        opts = Options(tuple(schemas or REFERENCE_SCHEMAS), content=content, workers=workers,
                       progress=progress)
        return take(spec, opts), "the given DSN"
    raise _neither(cfg(), spec)


def _neither(cfg: SpectralConfig, spec: str) -> UsageError:
    if "=" in spec:   # meant as a DSN: what libpq finds wrong with it
        try:
            conninfo_to_dict(spec)
        except psycopg.Error as exc:
            return UsageError(f"{redact(spec)!r} is not a valid DSN: "
                              f"{redact(' '.join(str(exc).split()))}")
    return UsageError(f"{spec!r} is neither a fingerprint file, an environment "
                      f"({', '.join(sorted(cfg.environments))}) nor a DSN")
