"""Issue 31, items 1 and 3: a drill's copy is checked physically (pg_amcheck, every block's
checksum) and its recovery log is read back. The damage is put into a backup's files (the
manifest's checksums rewritten, as if the pages had been damaged before the backup read them),
so the restore carries it; the compared tables stay intact, so only the new checks can see it.

Two environments: PostgreSQL 18 with data checksums on, PostgreSQL 15 with them off."""

from __future__ import annotations

import hashlib
import json
import re
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import SYSTEM_PG15, _processes_under
from spectral.drills.functional import DrillRequest, run_functional
from spectral.drills.integrity import (
    AMCHECK,
    CHECKSUMS,
    RECOVERY_LOG,
    AmcheckLevel,
    last_thorough,
)
from spectral.drills.result import DrillOutcome, DrillResult
from spectral.environment import Environment
from spectral.pg.conn import connect
from spectral.providers.base import CopyRequest
from spectral.providers.integrity import IntegrityReport, IntegrityState
from spectral.providers.local.provider import LocalProvider

PAGE = 8192
SETUP = """
create schema core;
create table core.notes (id int primary key, note text);
insert into core.notes values (1, 'base');
create table public.victim (id int, pad text);
insert into public.victim select g, repeat('x', 100) from generate_series(1, 2000) g;
alter table public.victim add primary key (id);
create table public.spare (id int, pad text);
insert into public.spare select g, repeat('y', 100) from generate_series(1, 3000) g;
delete from public.spare where id % 10 = 0;
"""


@dataclass
class World:
    environment: Environment
    provider: LocalProvider
    checksums: bool

    def sql(self, query: str) -> list[tuple[object, ...]]:
        with connect(self.provider.local.cluster().conninfo()) as conn:
            cur = conn.execute(query)
            return cur.fetchall() if cur.description else []

    def note(self) -> None:
        self.sql("insert into core.notes select max(id) + 1, 'more' from core.notes")

    def path(self, relation: str) -> str:
        return str(self.sql(f"select pg_relation_filepath('{relation}')")[0][0])

    def backup_dir(self) -> tuple[str, Path]:
        backup = self.provider.backup()
        return backup.id, self.provider.local.paths.state_dir / "backups" / "base" / backup.id

    def drill(self, backup_id: str, level: AmcheckLevel | None = None) -> DrillResult:
        return run_functional(self.environment, DrillRequest(
            copy=CopyRequest(backup_id=backup_id), amcheck=level))


def _world(root: Path, name: str, bin_dir: Path | None, checksums: bool) -> Iterator[World]:
    from spectral.config.load import load_config
    from spectral.environment import open_environment
    from spectral.pg.osuser import server_identity
    from spectral.runner import run

    work = Path(tempfile.mkdtemp(prefix=name, dir=root))
    work.chmod(0o755)
    (work / "spectral.toml").write_text(
        f'[environments.{name}]\nprovider = "local"\nposture = "pitr"\nschemas = ["core"]\n'
        f'load_bearing_tables = ["core.notes"]\n'
        + (f'pg_bin_dir = "{bin_dir}"\n' if bin_dir else ""))
    environment = open_environment(load_config(None, cwd=work), name)
    provider = environment.provider
    assert isinstance(provider, LocalProvider)
    local = provider.local
    try:
        local.up()
        if not checksums:
            local.down()
            run([provider.bins.path("pg_checksums"), "--disable", "-D",
                 str(local.paths.data_dir)], timeout=60, run_as=server_identity())
            local.up()
        world = World(environment, provider, checksums)
        for statement in SETUP.strip().split(";\n"):
            world.sql(statement)
        world.sql("vacuum public.spare")
        world.sql("checkpoint")
        yield world
    finally:
        for inst in provider.instances():
            provider.teardown(inst.id)
        local.down()
        assert _processes_under(work) == []


@pytest.fixture(scope="module")
def pg18_checksums(base_dir: Path) -> Iterator[World]:
    yield from _world(base_dir, "on18", None, checksums=True)


@pytest.fixture(scope="module")
def pg15_plain(base_dir: Path) -> Iterator[World]:
    if not (SYSTEM_PG15 / "postgres").exists():
        pytest.skip(f"no system PostgreSQL 15 at {SYSTEM_PG15}")
    yield from _world(base_dir, "off15", SYSTEM_PG15, checksums=False)


WORLDS = ["pg18_checksums", "pg15_plain"]


# ---- damage put into a backup's files ------------------------------------------------------
def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> str:
    """As backup_manifest writes it: the CRC's four bytes in memory (little-endian) order."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return struct.pack("<I", crc ^ 0xFFFFFFFF).hex()


def manifest_checksum(text: str) -> str:
    return hashlib.sha256(text[:text.index('"Manifest-Checksum"')].encode()).hexdigest()


def damage(backup: Path, relpath: str, block: int, change: Callable[[bytearray], None]) -> None:
    """Change one page of a backed-up file and rewrite its entry in backup_manifest (and the
    manifest's own checksum), so pg_verifybackup still accepts the backup."""
    file = backup / relpath
    raw = bytearray(file.read_bytes())
    manifest = (backup / "backup_manifest").read_text()
    assert manifest_checksum(manifest) in manifest          # the recomputation is right
    assert f'"Checksum": "{crc32c(bytes(raw))}"' in manifest
    page = raw[block * PAGE:(block + 1) * PAGE]
    change(page)
    raw[block * PAGE:(block + 1) * PAGE] = page
    file.write_bytes(bytes(raw))
    entry = re.compile(rf'(\{{ "Path": "{re.escape(relpath)}",.*?"Checksum": ")[0-9a-f]+(")')
    manifest, n = entry.subn(rf"\g<1>{crc32c(bytes(raw))}\g<2>", manifest)
    assert n == 1
    old = re.search(r'"Manifest-Checksum": "([0-9a-f]+)"', manifest)
    assert old is not None
    manifest = manifest.replace(old.group(1), manifest_checksum(manifest))
    (backup / "backup_manifest").write_text(manifest)


def scribble(page: bytearray) -> None:
    """Bytes in the middle of the page changed: only a checksum tells (or a check reading
    them)."""
    page[4000:4016] = b"\xa5" * 16


def unaligned_line_pointer(page: bytearray) -> None:
    """Line pointer 1 points one byte further into the page (not maximally aligned)."""
    (word,) = struct.unpack_from("<I", page, 24)
    struct.pack_into("<I", page, 24, (word & ~0x7FFF) | ((word & 0x7FFF) + 1))


def swapped_items(page: bytearray) -> None:
    """Two adjacent index tuples' line pointers swapped: the keys are out of order."""
    a, b = struct.unpack_from("<II", page, 24 + 4 * 2)
    struct.pack_into("<II", page, 24 + 4 * 2, b, a)


def garbled_header(page: bytearray) -> None:
    """A page header no page has (flags and bounds): fails verification with or without
    checksums."""
    page[8:24] = b"\xff" * 16


def _check(result: DrillResult, prefix: str) -> tuple[str, list[str], str]:
    found = [c for c in result.checks if c.name.startswith(prefix)]
    assert len(found) == 1, [c.name for c in result.checks]
    return found[0].outcome.value, found[0].evidence, found[0].detail


def _compared_equal(result: DrillResult) -> None:
    compared = {c.name: c.outcome for c in result.checks}
    assert compared["schema fingerprints (core)"] is DrillOutcome.PASS
    assert compared["row counts of load-bearing tables"] is DrillOutcome.PASS


# ---- the drills ----------------------------------------------------------------------------
@pytest.mark.server
@pytest.mark.parametrize("name", WORLDS)
def test_a_clean_drill_passes_with_the_new_checks_listed(name: str,
                                                         request: pytest.FixtureRequest) -> None:
    world: World = request.getfixturevalue(name)
    backup_id, _ = world.backup_dir()
    world.sql("insert into core.notes select max(id) + g, 'more' from core.notes, "
              "generate_series(1, 500) g group by g")
    result = world.drill(backup_id)
    assert result.outcome is DrillOutcome.PASS, [c.to_json() for c in result.checks[-4:]]
    outcome, evidence, detail = _check(result, RECOVERY_LOG)
    assert outcome == "pass" and all(e.startswith("note: ") for e in evidence), evidence
    outcome, _, detail = _check(result, AMCHECK)
    # the first drill of an environment runs the thorough checks (the cadence: none before)
    assert outcome == "pass" and "(thorough)" in _names(result, AMCHECK), detail
    outcome, _, detail = _check(result, CHECKSUMS)
    if world.checksums:
        assert outcome == "pass" and "every block" in detail
    else:
        assert outcome == "not_configured" and detail.startswith("not checked: data checksums "
                                                                 "are off")


def _names(result: DrillResult, prefix: str) -> str:
    return " ".join(c.name for c in result.checks if c.name.startswith(prefix))


@pytest.mark.server
@pytest.mark.parametrize("name", WORLDS)
def test_a_damaged_heap_page_and_btree_page_are_found_and_named(
        name: str, request: pytest.FixtureRequest) -> None:
    world: World = request.getfixturevalue(name)
    heap, index = world.path("public.victim"), world.path("public.victim_pkey")
    backup_id, backup = world.backup_dir()
    if world.checksums:
        damage(backup, heap, 3, scribble)
        damage(backup, index, 2, scribble)
    else:
        damage(backup, heap, 3, unaligned_line_pointer)
        damage(backup, index, 2, swapped_items)
    # on the cadence: basic within amcheck_thorough_every of a drill that ran the thorough
    # checks (the clean drill, when it ran first), else thorough; either finds the damage
    ran = last_thorough(world.environment.ledger.entries(), world.environment.name)
    result = world.drill(backup_id)
    assert result.outcome is DrillOutcome.FAIL
    _compared_equal(result)                         # the comparison alone would have passed
    assert ("(basic)" if ran else "(thorough)") in _names(result, AMCHECK)
    outcome, evidence, detail = _check(result, AMCHECK)
    text = "\n".join(evidence)
    assert outcome == "fail" and "; the first: " in detail, evidence
    assert re.search(r'heap table "postgres\.public\.victim", block 3\b', text), text
    assert re.search(r'btree index "postgres\.public\.victim_pkey", block 2\b', text), text
    outcome, evidence, _ = _check(result, CHECKSUMS)
    if world.checksums:
        text = "\n".join(evidence)
        assert outcome == "fail", evidence
        assert f"postgres.public.victim ({heap}), block 3: calculated checksum" in text, text
        assert f"postgres.public.victim_pkey ({index}), block 2: calculated" in text, text
    else:
        assert outcome == "not_configured"


@pytest.mark.server
@pytest.mark.parametrize("name", WORLDS)
def test_damage_only_recovery_saw_fails_the_drill(name: str,
                                                   request: pytest.FixtureRequest) -> None:
    """A free space map page is not WAL-logged: redo of a VACUUM after the backup reads it
    from the backup (heap_xlog_prune: "regardless of a full-page image"), finds it invalid,
    zeroes it and goes on with a WARNING. The data is whole, pg_amcheck reads no free space
    map: only the recovery log tells."""
    world: World = request.getfixturevalue(name)
    fsm = world.path("public.spare") + "_fsm"
    backup_id, backup = world.backup_dir()
    leaf = (backup / fsm).stat().st_size // PAGE - 1      # the leaf page of heap block 0..
    damage(backup, fsm, leaf, garbled_header)
    world.sql("delete from public.spare where id % 7 = 0")
    world.sql("vacuum public.spare")
    world.note()          # a commit: the WAL of the VACUUM is written, the snapshot after it
    result = world.drill(backup_id, AmcheckLevel.BASIC)
    _compared_equal(result)
    assert _check(result, AMCHECK)[0] == "pass"
    outcome, evidence, detail = _check(result, RECOVERY_LOG)
    assert outcome == "fail", (detail, evidence)
    assert any(re.search(rf"WARNING: +invalid page in block {leaf} of relation \S*{fsm}",
                         e) for e in evidence), evidence
    assert result.outcome is DrillOutcome.FAIL
    recorded = json.loads(json.dumps(result.to_json()))
    assert any(c["name"] == RECOVERY_LOG and c["outcome"] == "fail" for c in recorded["checks"])


@pytest.mark.server
@pytest.mark.parametrize("name", WORLDS)
def test_clean_restores_to_the_end_of_the_wal_and_to_a_time_log_no_damage(
        name: str, request: pytest.FixtureRequest) -> None:
    """What a clean recovery says where it stops (the end of the WAL: "invalid record length
    ... got 0" at LOG; a time: "recovery stopping before commit"), on 15 and 18: no alarm."""
    from datetime import UTC, datetime

    from spectral.recovery_target import LatestTarget, TimeTarget

    world: World = request.getfixturevalue(name)
    backup_id, _ = world.backup_dir()
    world.note()
    at = datetime.now(UTC)
    world.note()
    for target in (LatestTarget(), TimeTarget(at)):
        inst = world.provider.restore(target, keep=False, backup_id=backup_id)
        try:
            integrity = world.provider.throwaways.copy(inst).integrity
            assert integrity is not None
            report = integrity.recovery_log()
        finally:
            world.provider.teardown(inst.id)
        assert report.state is IntegrityState.SOUND, (target, report)


# ---- the readers, on what PostgreSQL 15 and 18 printed in the drills above -----------------
DATA = Path(__file__).parent / "data" / "integrity"
CLEAN_18 = (DATA / "clean18.log").read_text()
# the end of the WAL of a recovery to latest from pg_wal or a partial segment (xlogreader.c)
END_15 = ("2026-12-05 19:38:13.807 UTC [11790] LOG:  invalid record length at 0/3011EB0: wanted "
          "24, got 0\n")
END_18 = ("2026-12-05 19:38:13.807 UTC [11790] LOG:  invalid record length at 0/3011EB0: expected "
          "at least 24, got 0\n")
DAMAGED_18 = (DATA / "damaged18.log").read_text()
DAMAGED_15 = (DATA / "damaged15.log").read_text()
WAL_CRC = ("2026-12-05 19:38:13.807 UTC [11790] LOG:  incorrect resource manager data checksum "
           "in record at 0/3011EB0\n")


def test_a_clean_recovery_log_is_no_alarm_and_its_end_of_wal_is_a_note() -> None:
    from spectral.pg.serverlog import classify, recovery_part

    clean = classify(recovery_part(CLEAN_18))
    assert not clean.damaged and clean.lines == 14      # the ERROR after "ready" is a client's
    for end in (END_15, END_18):
        log = classify(end + recovery_part(CLEAN_18))
        assert not log.damaged and log.notes == ("LOG: " + end.split("LOG:  ")[1].strip(),)


def test_damage_in_a_recovery_log_is_named_at_any_level() -> None:
    from spectral.pg.serverlog import classify

    log18 = classify(DAMAGED_18)
    assert log18.damage == (
        "LOG: page verification failed, calculated checksum 11605 but expected 65535 (WAL redo "
        "at 0/7064A78 for Heap2/PRUNE_VACUUM_SCAN: blkref #0: rel 1663/5/16401, blk 0)",
        'WARNING: invalid page in block 2 of relation "base/5/16401_fsm"; zeroing out page '
        "(WAL redo at 0/7064A78 for Heap2/PRUNE_VACUUM_SCAN: blkref #0: rel 1663/5/16401, "
        "blk 0)")
    assert classify(DAMAGED_15).damage[0].startswith("WARNING: invalid page in block 2 of "
                                                     "relation base/5/16399_fsm")
    assert classify(WAL_CRC).damaged                     # a record there, but wrong
    panic = "2026-12-05 19:38:13.807 UTC [1] PANIC:  WAL contains references to invalid pages\n"
    assert classify(panic).damaged


AMCHECK_18 = (DATA / "amcheck18.txt").read_text()
AMCHECK_15 = (DATA / "amcheck15.txt").read_text()


def test_pg_amcheck_and_pg_checksums_reports_name_relation_and_block() -> None:
    from spectral.pg.integrity import amcheck_findings, checksum_findings

    files = {"base/5/16393": "postgres.public.victim", "base/5/16399": "postgres.public.x_pkey"}
    assert amcheck_findings(AMCHECK_18, files) == [
        'heap table "postgres.public.victim", block 3: ERROR: invalid page in block 3 of '
        'relation "base/5/16393" (postgres.public.victim (base/5/16393))',
        'btree index "postgres.public.victim_pkey", block 2: ERROR: invalid page in block 2 '
        'of relation "base/5/16399" (postgres.public.x_pkey (base/5/16399))']
    found = amcheck_findings(AMCHECK_15, {})
    assert found[0] == ('heap table "postgres.public.victim", block 3, offset 1: line pointer '
                        "to page offset 8057 is not maximally aligned")
    assert found[1].startswith('btree index "postgres.public.victim_pkey", block 2: ERROR: '
                               "item order invariant violated")
    err = ('pg_checksums: error: checksum verification failed in file "/d/data/base/5/16399.1", '
           "block 2: calculated checksum E209 but block contains EB1C\n")
    assert checksum_findings(err, Path("/d/data"), files) == [
        "postgres.public.x_pkey (base/5/16399), block 131074: calculated checksum E209 but "
        "block contains EB1C"]


def test_the_thorough_checks_run_on_the_posture_cadence() -> None:
    import tomllib
    from datetime import UTC, datetime, timedelta

    from spectral.config.load import parse_config
    from spectral.config.models import EnvironmentConfig
    from spectral.drills.integrity import AmcheckLevel, amcheck_level
    from spectral.ledger import Entry, EntryKind

    def env(extra: str = "") -> EnvironmentConfig:
        text = f'[environments.e]\nprovider = "local"\nposture = "pitr"\n{extra}'
        return parse_config(tomllib.loads(text), Path("t.toml")).environments["e"]

    now = datetime(2026, 12, 5, tzinfo=UTC)

    def drilled(days: float, name: str) -> Entry:
        return Entry(1, now - timedelta(days=days), EntryKind.DRILL, "e", {
            "type": "functional", "outcome": "pass",
            "checks": [{"name": name, "outcome": "pass"}]}, "", "")

    thorough = "physical integrity: pg_amcheck (thorough)"
    assert amcheck_level(None, env(), [], now)[0] == "thorough"          # never ran
    assert amcheck_level(None, env(), [drilled(3, thorough)], now)[0] == "basic"
    assert amcheck_level(None, env(), [drilled(8, thorough)], now)[0] == "thorough"   # pitr: 7 d
    assert amcheck_level(None, env(), [drilled(3, thorough)], now, "other")[0] == "thorough"
    basic = drilled(1, "physical integrity: pg_amcheck (basic)")
    assert amcheck_level(None, env(), [basic], now)[0] == "thorough"
    assert amcheck_level(None, env('amcheck_thorough_every = "30d"'),
                         [drilled(8, thorough)], now)[0] == "basic"
    assert amcheck_level(AmcheckLevel.BASIC, env(), [], now) == (AmcheckLevel.BASIC, "asked for")


class _Sound:
    """A provider's integrity object that finds nothing, counting what it was asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def recovery_log(self) -> IntegrityReport:
        self.asked.append("log")
        return IntegrityReport(IntegrityState.SOUND, "12 line(s), no warning or error")

    def amcheck(self, *, thorough: bool) -> IntegrityReport:
        self.asked.append(f"amcheck thorough={thorough}")
        return IntegrityReport(IntegrityState.SOUND, "pg_amcheck")

    def checksums(self) -> IntegrityReport:
        self.asked.append("checksums")
        return IntegrityReport(IntegrityState.SOUND, "pg_checksums")


def _result() -> DrillResult:
    from spectral.drills.result import Check, DrillType

    result = DrillResult(DrillType.FUNCTIONAL, "e", "2026-12-05T00:00:00+00:00")
    result.checks.append(Check("row counts of load-bearing tables", DrillOutcome.PASS))
    return result


def test_a_copy_without_physical_checks_says_not_checked_never_pass() -> None:
    from spectral.drills.integrity import check_copy

    result = _result()
    check_copy(result, None, AmcheckLevel.BASIC, "asked for", kept=False,
               none_because="a Supabase project has no data directory to read")
    added = result.checks[1:]
    assert [c.outcome for c in added] == [DrillOutcome.NOT_CONFIGURED] * 3
    assert all(c.detail == "not checked: a Supabase project has no data directory to read"
               for c in added)
    assert result.outcome is DrillOutcome.PASS          # what was compared still decides


def test_a_kept_copy_is_not_stopped_for_its_checksums() -> None:
    from spectral.drills.integrity import check_copy

    result, sound = _result(), _Sound()
    check_copy(result, sound, AmcheckLevel.THOROUGH, "asked for", kept=True, none_because="")
    assert sound.asked == ["log", "amcheck thorough=True"]
    checksums = result.checks[-1]
    assert checksums.outcome is DrillOutcome.NOT_CONFIGURED and "--keep" in checksums.detail
    check_copy(result := _result(), sound := _Sound(), AmcheckLevel.BASIC, "", kept=False,
               none_because="")
    assert sound.asked == ["log", "amcheck thorough=False", "checksums"]
    assert result.outcome is DrillOutcome.PASS and "integrity" in result.timings


def test_the_amcheck_option_takes_basic_or_thorough() -> None:
    from spectral.cli.drill_cmds import _amcheck
    from spectral.errors import UsageError

    assert _amcheck(None) is None and _amcheck("Thorough") is AmcheckLevel.THOROUGH
    with pytest.raises(UsageError, match="expected basic or thorough"):
        _amcheck("full")
