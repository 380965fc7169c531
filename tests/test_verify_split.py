"""One pg_verifybackup split into several run side by side (pg/verifybackup.py `split_argvs`):
each file in exactly one share, the others ignored, the WAL parsed once; one program when it
cannot be split. Pure; tests/test_backup_settle.py checks the split against one program on
real damage."""

from __future__ import annotations

from spectral.pg.verifybackup import (
    MAX_IGNORED_CHARS,
    manifest_files,
    shares,
    split_argvs,
)

FILES = [("base/5/big", 900), ("base/5/mid", 500), ("base/5/small", 400), ("global/1", 8),
         ("backup_label", 1)]
ARGV = ["pg_verifybackup", "--quiet", "/b"]


def test_shares_hold_each_file_once_and_about_equal_bytes() -> None:
    dealt = shares(FILES, 2)
    assert sorted(p for share in dealt for p in share) == sorted(p for p, _ in FILES)
    size = dict(FILES)
    assert sorted(sum(size[p] for p in share) for share in dealt) == [901, 908]
    assert shares(FILES[:1], 3) == [["base/5/big"]]       # no empty share


def test_each_program_ignores_exactly_the_others_shares_and_one_parses_the_wal() -> None:
    argvs = split_argvs(ARGV, FILES, 2)
    assert len(argvs) == 2
    assert [a[-1] for a in argvs] == ["/b", "/b"] and all(a[:2] == ARGV[:2] for a in argvs)
    assert ["--no-parse-wal" in a for a in argvs] == [False, True]
    ignored = [{x.removeprefix("--ignore=") for x in a if x.startswith("--ignore=")}
               for a in argvs]
    checked = [{p for p, _ in FILES} - share for share in ignored]
    assert checked[0].isdisjoint(checked[1])
    assert checked[0] | checked[1] == {p for p, _ in FILES}


def test_a_path_that_is_not_utf8_a_single_core_or_too_many_files_is_one_program() -> None:
    assert manifest_files({"Files": [{"Encoded-Path": "ff", "Size": 1}]}) is None
    assert split_argvs(ARGV, None, 2) == [ARGV]
    assert split_argvs(ARGV, FILES, 1) == [ARGV]
    many = [(f"base/5/{i:08d}", 8192) for i in range(MAX_IGNORED_CHARS // 20)]
    assert split_argvs(ARGV, many, 2) == [ARGV]
    assert manifest_files({"Files": [{"Path": "a", "Size": 3}]}) == [("a", 3)]


def test_no_parse_wal_already_asked_is_not_given_twice() -> None:
    argv = ["pg_verifybackup", "--quiet", "--no-parse-wal", "/b"]
    assert all(a.count("--no-parse-wal") == 1 for a in split_argvs(argv, FILES, 3))
