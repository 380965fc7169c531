"""A data directory's control file (global/pg_control), read without starting its server."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from spectral.errors import ClusterError
from spectral.pg.binaries import PgBinaries
from spectral.runner import run


def system_identifier(data_dir: Path) -> str:
    """What pg_controldata reports as the database system identifier, without a process: the
    control file's first field (ControlFileData.system_identifier, a uint64 in the server's
    byte order, which is this machine's). Every command of a local environment checks it,
    some several times."""
    control = data_dir / "global" / "pg_control"
    try:
        with control.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ClusterError(f"could not read {control}: {exc.strerror or exc}") from None
    if len(head) < 8:
        raise ClusterError(f"{control} is cut short ({len(head)} bytes)")
    return str(int.from_bytes(head, sys.byteorder))


def control_fact(bins: PgBinaries, data_dir: Path, name: str) -> str:
    """One line of pg_controldata's report on a data directory."""
    out = run([bins.path("pg_controldata"), str(data_dir)], timeout=30,
              env={"LC_ALL": "C"}).stdout
    m = re.search(rf"^{re.escape(name)}:\s+(\S+)", out, re.MULTILINE)
    if not m:
        raise ClusterError(f"pg_controldata could not read {data_dir}")
    return m.group(1)
