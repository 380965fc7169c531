"""What `dr compare A B` can be given: a fingerprint file, an environment name or a DSN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spectral.config.models import SpectralConfig
from spectral.errors import UsageError
from spectral.refdb import REFERENCE_SCHEMAS
from spectral.target import open_target
from spectral.verify.fingerprint import Options, load, take


def looks_like_dsn(text: str) -> bool:
    return "://" in text or ("=" in text and " " in text) or text.startswith(("host=", "dbname="))


def fingerprint_of(cfg: SpectralConfig, spec: str, *, schemas: list[str] | None,
                   content: bool, workers: int | None) -> tuple[dict[str, Any], str]:
    """Load or take the fingerprint that `spec` names; returns it and a label for output."""
    path = Path(spec)
    if path.suffix == ".json" or path.exists():
        if not path.exists():
            raise UsageError(f"{spec}: no such fingerprint file")
        return load(path), str(path)
    if spec in cfg.environments:
        with open_target(cfg, spec) as target:
            opts = Options(tuple(schemas or target.env.schemas), content=content,
                           workers=workers)
            return take(target.conninfo, opts), f"environment {spec}"
    if looks_like_dsn(spec):
        opts = Options(tuple(schemas or REFERENCE_SCHEMAS), content=content, workers=workers)
        return take(spec, opts), "the given DSN"
    raise UsageError(f"{spec!r} is neither a fingerprint file, an environment "
                     f"({', '.join(sorted(cfg.environments))}) nor a DSN")
