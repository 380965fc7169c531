"""The provider contract's subjects for the backups a team already has (issue 30): its own
pgBackRest stanza (Debian's PostgreSQL 15), a plain archive and Barman Cloud (the embedded
PostgreSQL 18), each world set up as a team would (attach_world.py, barman_world.py), the
contract's `core.notes` made in the team's database. spectral reads as the drill role; the
tests write as the team does, as its superuser."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import SYSTEM_PG15

# what an attached environment never does: it writes to the team's repository or server
ATTACHED_LACKS = frozenset({"take a backup", "undo an in-place restore", "expire backups",
                            "stream WAL"})
SCHEMA = 'posture = "pitr"\nschemas = ["core"]\nload_bearing_tables = ["core.notes"]\n'


def _quick_archiving(team: Any) -> None:
    """The drill role may not switch WAL: the team's archive_timeout bounds the wait."""
    team.sql("alter system set archive_timeout = '2s'")
    team.sql("select pg_reload_conf()")


@contextlib.contextmanager
def team_world(kind: str, root: Path, bins: Any,
               schema: Callable[[str], None]) -> Iterator[tuple[str, Any, str]]:
    """(environment name, the team's world, the team's own superuser DSN), spectral.toml
    written in `root`."""
    from spectral.pg.binaries import find_binaries

    if kind == "attached-pgbackrest":
        if shutil.which("pgbackrest") is None or not (SYSTEM_PG15 / "postgres").exists():
            pytest.skip("needs /usr/bin/pgbackrest and Debian's PostgreSQL 15 (python3 dev.py "
                        "test installs both)")
        from attach_world import STANZA, team_stanza

        with team_stanza(root, find_binaries(SYSTEM_PG15)) as t:
            (root / "spectral.toml").write_text(
                f'[environments.team]\nprovider = "pgbackrest"\ndsn = "{t.dsn}"\n'
                f'pg_bin_dir = "{SYSTEM_PG15}"\n{SCHEMA}[environments.team.pgbackrest]\n'
                f'attach = true\nstanza = "{STANZA}"\nconfig = "{t.conf}"\n')
            schema(t.cluster.conninfo("app"))
            _quick_archiving(t)
            t.pgbackrest("backup", "--type=full")
            yield "team", t, t.cluster.conninfo("app")
    elif kind == "archive":
        from attach_world import team_archive

        with team_archive(root, bins, "gz") as a:
            (root / "spectral.toml").write_text(
                f'[environments.files]\nprovider = "archive"\ndsn = "{a.dsn}"\n'
                f'pg_bin_dir = "{bins.bin_dir}"\n{SCHEMA}[environments.files.archive]\n'
                f'base_backups = "{a.base}"\nwal = "{a.wal}"\n')
            schema(a.cluster.conninfo("app"))
            _quick_archiving(a)
            a.basebackup("nightly", "-Ft", "--compress=gzip")
            yield "files", a, a.cluster.conninfo("app")
    else:
        from barman_world import SERVER_NAME, team_barman
        from test_attach_barman import write_keys

        with team_barman(root, bins) as b:
            keys = write_keys(root, b.s3.key_id, b.s3.secret)
            (root / "spectral.toml").write_text(
                f'[environments.cloud]\nprovider = "barman-cloud"\ndsn = "{b.dsn}"\n'
                f'pg_bin_dir = "{bins.bin_dir}"\n{SCHEMA}[environments.cloud.barman_cloud]\n'
                f'destination = "{b.destination}"\nserver_name = "{SERVER_NAME}"\n'
                f'endpoint_url = "{b.s3.endpoint}"\naccess_key_id = "file:{keys[0]}"\n'
                f'secret_access_key = "file:{keys[1]}"\nbin_dir = "{b.bin_dir}"\n')
            schema(b.cluster.conninfo("app"))
            _quick_archiving(b)
            b.barman_backup()
            yield "cloud", b, b.cluster.conninfo("app")
