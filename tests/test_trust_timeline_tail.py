"""Found by the lifecycle's long profile (session 9): a crash of the source soon after an
in-place restore. The new timeline's WAL (its first segment, which shares its number with the
old timeline's last one, and possibly its history file) was only in the stopped server's
pg_wal; the unarchived tail was looked for only after the archive's newest segment number, so
none was found, nothing was archived, and `--latest` restored the rewound timeline's end:
rows the in-place restore had removed, without the commit made after it, exit 0."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import notes_environment, spectral
from spectral.pg.conn import connect
from spectral.providers.local.provider import LocalProvider
from test_trust_wal import kill_postmaster


def _insert(dsn: str, row: int) -> int:
    with connect(dsn) as conn:
        conn.execute("insert into core.notes values (%s, 'x')", (row,))
        return int(conn.execute("select xid::text from pg_last_committed_xact()"
                                ).fetchone()[0])  # type: ignore[index]


@pytest.mark.server
def test_a_crash_after_an_in_place_restore_keeps_the_new_timeline(work_dir: Path) -> None:
    with notes_environment(work_dir) as environment:
        p = environment.provider
        assert isinstance(p, LocalProvider)
        dsn = p.local.cluster().conninfo()
        keep = _insert(dsn, 2)
        _insert(dsn, 3)                    # rewound by the in-place restore
        archive = p.repo.archive
        try:
            res = spectral("dr", "restore", "--in-place", "--yes", "--target-xid", str(keep),
                           cwd=work_dir)
            assert res.returncode == 0, res.stderr
            archive.chmod(0o555)           # the new timeline's segment stays in pg_wal only
            dsn = p.local.cluster().conninfo()
            _insert(dsn, 4)
            kill_postmaster(p.local.paths.data_dir)
        finally:
            archive.chmod(0o755)
        res = spectral("--json", "dr", "restore", "--latest", cwd=work_dir)
        assert res.returncode == 0, res.stderr
        inst = json.loads(res.stdout)
        try:
            with connect(inst["dsn"]) as conn:
                rows = [r[0] for r in conn.execute("select id from core.notes order by id")]
        finally:
            spectral("dr", "teardown", inst["id"], cwd=work_dir)
        assert rows == [1, 2, 4]
