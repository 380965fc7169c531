"""pg_verifybackup's errors: proven damage (a FAIL, named) against a backup it could not read
(could not verify). Pure: the messages are pg_verifybackup.c's, PostgreSQL 13-18."""

from __future__ import annotations

from spectral.errors import BackupDamaged, CouldNotVerify, ExitCode
from spectral.pg.verifybackup import damage

STDERR = """\
pg_verifybackup: error: checksum mismatch for file "base/5/16384"
pg_verifybackup: error: "base/5/2619" has size 8192 on disk but size 16384 in the manifest
pg_verifybackup: error: "global/4178" is present in the manifest but not on disk
pg_verifybackup: error: "base/5/extra" is present on disk but not in the manifest
pg_verifybackup: error: checksum mismatch for file "base/5/1259" in "base.tar"
pg_verifybackup: error: "base/5/1247" has size 1 in "base.tar" but size 2 in the manifest
pg_verifybackup: error: file "base/1/1" has checksum of length 4, but expected 8
"""


def test_each_kind_of_damage_is_named_in_order() -> None:
    assert damage(STDERR) == [
        'checksum mismatch for file "base/5/16384"',
        '"base/5/2619" has size 8192 on disk but size 16384 in the manifest',
        '"global/4178" is present in the manifest but not on disk',
        '"base/5/extra" is present on disk but not in the manifest',
        'checksum mismatch for file "base/5/1259" in "base.tar"',
        '"base/5/1247" has size 1 in "base.tar" but size 2 in the manifest',
        'file "base/1/1" has checksum of length 4, but expected 8']


def test_a_manifest_that_does_not_match_itself_is_damage() -> None:
    assert damage("pg_verifybackup: error: could not parse backup manifest: manifest "
                  "checksum mismatch\n") == ["manifest checksum mismatch"]


def test_a_backup_that_cannot_be_read_proves_nothing() -> None:
    for stderr in ('pg_verifybackup: error: could not open file "base/5/16384": '
                   'Permission denied\n',
                   'pg_verifybackup: error: could not open file "backup_manifest": No such '
                   'file or directory\n',
                   "pg_verifybackup: error: WAL parsing failed for timeline 1\n", ""):
        assert damage(stderr) == [], stderr


def test_damage_is_a_fail_and_names_backup_and_files() -> None:
    exc = BackupDamaged("20261206T010203004F", ['checksum mismatch for file "base/5/1"'])
    assert exc.exit_code is ExitCode.CHECK_FAILED and not isinstance(exc, CouldNotVerify)
    assert exc.message == ('backup 20261206T010203004F is damaged and will not be restored: '
                           'checksum mismatch for file "base/5/1"')
