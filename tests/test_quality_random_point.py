"""Issue 31, item 5: drills at old points. `dr drill functional --point random` picks a stored
snapshot older than --older-than with a recorded seed, restores to its exact LSN from the
OLDEST backup that reaches it and compares the copy with that snapshot.

One local environment (PostgreSQL, real WAL): four backups, each followed by writes and a
snapshot; `dr expire --keep 3` removes the first backup and the WAL only it needed, so the
first snapshot is out of reach; rows written after the last snapshot must be absent from any
copy."""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import _processes_under, spectral
from spectral.drills.random_point import OUTSIDE, RandomPoint, choose, pick, refuse_unless_able
from spectral.environment import Environment
from spectral.errors import ExitCode, UsageError
from spectral.ledger import EntryKind
from spectral.pg.conn import connect
from spectral.providers.base import CopyRequest
from spectral.providers.local.provider import LocalProvider
from spectral.verify import snapshots

OLDER = 1.0   # seconds: every snapshot of the world is older by the time a drill runs


@dataclass
class World:
    work: Path
    environment: Environment
    provider: LocalProvider
    backups: list[str]          # oldest first; backups[0] expired
    counts: list[int]           # core.notes rows at each snapshot, oldest first

    def sql(self, query: str) -> list[tuple[object, ...]]:
        with connect(self.provider.local.cluster().conninfo()) as conn:
            cur = conn.execute(query)
            return cur.fetchall() if cur.description else []

    def cli(self, *args: str) -> tuple[int, str, str]:
        done = spectral(*args, cwd=self.work)
        return done.returncode, done.stdout, done.stderr


def _chain(world: World) -> None:
    """Four backups, each followed by different writes and a snapshot; the first expired."""
    for n in range(4):
        world.backups.append(world.provider.backup().id)
        world.sql(f"insert into core.notes select g, 'after backup {n}' from "
                  f"generate_series({n * 100 + 1}, {n * 100 + 10 + n}) g")
        world.counts.append(int(str(world.sql("select count(*) from core.notes")[0][0])))
        code, _, err = world.cli("dr", "snapshot")
        assert code == 0, err
    code, _, err = world.cli("dr", "expire", "--keep", "3", "--yes")
    assert code == 0, err
    assert [b.id for b in world.provider.backups()] == world.backups[1:]
    world.sql("insert into core.notes select g, 'after every snapshot' from "
              "generate_series(1000, 1099) g")
    time.sleep(OLDER + 0.1)


@pytest.fixture(scope="module")
def world(base_dir: Path) -> Iterator[World]:
    from spectral.config.load import load_config
    from spectral.environment import open_environment

    work = Path(tempfile.mkdtemp(prefix="randpoint", dir=base_dir))
    work.chmod(0o755)
    (work / "spectral.toml").write_text(
        '[environments.rp]\nprovider = "local"\nposture = "pitr"\nschemas = ["core"]\n'
        'load_bearing_tables = ["core.notes"]\n')
    environment = open_environment(load_config(None, cwd=work), "rp")
    provider = environment.provider
    assert isinstance(provider, LocalProvider)
    try:
        provider.local.up()
        w = World(work, environment, provider, [], [])
        w.sql("create schema core; create table core.notes (id int primary key, note text)")
        _chain(w)
        yield w
    finally:
        for inst in provider.instances():
            provider.teardown(inst.id)
        provider.local.down()
        assert _processes_under(work) == []


def _seed_for(world: World, snapshot: int) -> int:
    """A seed that picks the world's `snapshot`-th snapshot (choose() is pure: no restore)."""
    refs = snapshots.listing(world.environment.ledger.dir)
    window, backups = world.provider.window(), world.provider.backups()
    for seed in range(200):
        picked = choose(refs, window, backups, RandomPoint(OLDER, seed), datetime.now(UTC))
        if picked.candidate.snapshot.path == refs[snapshot].path:
            return seed
    raise AssertionError(f"no seed under 200 picks snapshot {snapshot}")


@pytest.mark.server
def test_random_point_restores_the_snapshot_from_the_oldest_backup(world: World) -> None:
    refs = snapshots.listing(world.environment.ledger.dir)
    assert len(refs) == 4
    seed = _seed_for(world, 2)       # taken after the third backup: two backups reach it
    code, out, err = world.cli("dr", "drill", "functional", "--point", "random", "--seed",
                               str(seed), "--older-than", f"{OLDER}s", "--json")
    result = json.loads(out)
    assert code == 0, (err, result)
    assert f"(seed {seed}, 3 candidate(s)), from backup {world.backups[1]}" in err
    point = result["point"]
    assert point["seed"] == seed and point["candidates"] == 3
    assert point["skipped"] == {OUTSIDE: 1}            # the expired backup's snapshot
    assert point["snapshot"] == f"snapshots/{refs[2].path.name}"
    assert point["snapshot_lsn"] == refs[2].lsn
    # the oldest backup that reaches it (backups[1]), not the newest before it (backups[2])
    assert result["backup_id"] == point["backup_id"] == world.backups[1]
    assert datetime.fromisoformat(result["snapshot_taken_at"]) == refs[2].taken_at
    assert f"LSN {refs[2].lsn} (exclusive)" in result["recovery_target"]
    assert result["row_counts"] == {"core.notes": world.counts[2]}
    checks = {c["name"]: c for c in result["checks"]}
    counts = [c for name, c in checks.items() if "count" in name and "drift" not in name]
    assert counts and all(c["outcome"] == "pass" for c in counts), counts
    assert all(c["outcome"] in ("pass", "warn", "not_configured") for c in checks.values())
    assert checks["recovery reached the target"]["outcome"] == "pass"
    entry = world.environment.ledger.entries()[-1]
    assert entry.kind is EntryKind.DRILL and entry.data["point"]["seed"] == seed
    assert entry.data["backup_id"] == world.backups[1]
    # the seed replays the same choice
    again = pick(world.provider, world.environment.ledger, RandomPoint(OLDER, seed))
    assert again.candidate.snapshot.path == refs[2].path
    assert again.candidate.backup.id == world.backups[1]


@pytest.mark.server
def test_a_fresh_seed_is_recorded_and_replays(world: World) -> None:
    ledger = world.environment.ledger
    first = pick(world.provider, ledger, RandomPoint(OLDER))
    for _ in range(3):
        again = pick(world.provider, ledger, RandomPoint(OLDER, first.seed))
        assert again.candidate == first.candidate
    assert first.to_json()["seed"] == first.seed
    assert first.candidate.backup.id == world.backups[1]   # every candidate: the oldest kept


@pytest.mark.server
def test_no_snapshot_old_enough_is_exit_3_in_one_line(world: World) -> None:
    before = len(world.environment.ledger.entries())
    code, out, err = world.cli("dr", "drill", "functional", "--point", "random",
                               "--older-than", "30d")
    assert code == ExitCode.COULD_NOT_VERIFY, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "no stored snapshot older than 30.0 d" in lines[0]
    assert "the oldest, of" in lines[0] and "old" in lines[0]
    assert "--older-than" in lines[0] and "spectral dr snapshot" in lines[0]
    assert len(world.environment.ledger.entries()) == before     # nothing ran, nothing recorded


@pytest.mark.server
def test_random_point_refuses_other_points(world: World) -> None:
    code, _, err = world.cli("dr", "drill", "functional", "--point", "random", "--backup",
                             world.backups[2])
    assert code == ExitCode.USAGE and "--point random chooses" in err
    code, _, err = world.cli("dr", "drill", "functional", "--seed", "4")
    assert code == ExitCode.USAGE and "--seed goes with --point random" in err


def test_supabase_refuses_random_point_in_one_line() -> None:
    from spectral.providers.supabase.provider import SupabaseProvider

    provider = SupabaseProvider(None, "abcdefghijklmnopqrst", "postgresql://x", ("core",))
    with pytest.raises(UsageError) as caught:
        refuse_unless_able(provider, CopyRequest(), target_time=False)
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.message.startswith("--point random (an LSN target) needs any target, "
                                           "which Supabase project abcdefghijklmnopqrst")
    assert "\n" not in caught.value.message


def test_a_drill_at_an_old_point_is_no_baseline_for_a_later_point() -> None:
    from spectral.drills.drift import baseline
    from spectral.ledger import Entry

    def entry(seq: int, snapshot: str, point: dict[str, object] | None) -> Entry:
        data = {"type": "functional", "outcome": "pass", "row_counts": {"core.a": seq},
                "snapshot_taken_at": snapshot, **({"point": point} if point else {})}
        return Entry(seq, datetime(2026, 12, seq, tzinfo=UTC), EntryKind.DRILL, "e", data,
                     "0", "h")

    entries = [entry(1, "2026-11-30T00:00:00+00:00", None),
               entry(2, "2026-11-10T00:00:00+00:00", {"kind": "random", "seed": 7})]
    tonight = baseline(entries, "e", "2026-12-05T00:00:00+00:00")
    assert tonight is not None and tonight.drill.row_counts == {"core.a": 1}
    older = baseline(entries, "e", "2026-11-15T00:00:00+00:00")
    assert older is not None and older.drill.row_counts == {"core.a": 2}


@pytest.mark.slow
@pytest.mark.server
def test_pgbackrest_restores_a_random_point_from_its_oldest_backup(work_dir: Path) -> None:
    """The same choice through pgBackRest (`restore --set` of the oldest backup reaching the
    snapshot, `--type=lsn --target-exclusive`)."""
    import shutil

    from conftest import SYSTEM_PG15

    if shutil.which("pgbackrest") is None or not (SYSTEM_PG15 / "postgres").exists():
        pytest.skip("needs pgbackrest and Debian's PostgreSQL 15")
    (work_dir / "spectral.toml").write_text(
        f'[environments.pgb]\nprovider = "pgbackrest"\nposture = "pitr"\n'
        f'pg_bin_dir = "{SYSTEM_PG15}"\nschemas = ["app"]\nload_bearing_tables = ["app.t"]\n'
        f'[environments.pgb.pgbackrest]\nstanza = "rp"\n'
        f'[[environments.pgb.pgbackrest.repositories]]\ntype = "posix"\n'
        f'path = "{work_dir / "repo"}"\n')

    def cli(*args: str, expect: int = 0) -> str:
        done = spectral(*args, cwd=work_dir)
        assert done.returncode == expect, (args, done.stdout, done.stderr)
        return done.stdout

    try:
        cli("local", "up")
        dsn = json.loads(cli("local", "status", "--json"))["dsn"]
        with connect(dsn) as conn:
            conn.execute("create schema app; create table app.t (id int primary key)")
        ids = []
        for n in range(2):
            ids.append(json.loads(cli("dr", "backup", "--json"))["id"])
            with connect(dsn) as conn:
                conn.execute(f"insert into app.t select generate_series({n * 10}, {n * 10 + n})")
            cli("dr", "snapshot")
        with connect(dsn) as conn:
            conn.execute("insert into app.t select generate_series(100, 199)")
        time.sleep(OLDER + 0.1)
        result = json.loads(cli("dr", "drill", "functional", "--point", "random", "--seed", "0",
                                "--older-than", f"{OLDER}s", "--json"))
        assert result["outcome"] == "pass", result
        assert result["point"]["candidates"] == 2 and result["point"]["skipped"] == {}
        assert result["backup_id"] == ids[0]             # the oldest that reaches it
        # the seed picks the second snapshot: the newest backup before it is ids[1]
        lsns = [r["lsn"] for r in json.loads(cli("dr", "snapshots", "--json"))]
        assert result["point"]["snapshot_lsn"] == lsns[1]
        assert result["row_counts"] == {"app.t": 3}
    finally:
        spectral("dr", "teardown", "--all", cwd=work_dir)
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []


def test_the_report_says_the_seed_and_how_to_replay_it() -> None:
    from rich.console import Console

    from spectral.cli.drill_cmds import print_drill
    from spectral.drills.result import DrillResult, DrillType

    result = DrillResult(DrillType.FUNCTIONAL, "e", "2026-12-05T00:00:00+00:00", "b1",
                         "LSN 0/3000060 (exclusive), the snapshot of ...")
    result.point = {"kind": "random", "seed": 42, "older_than_s": 604800.0, "candidates": 5,
                    "skipped": {OUTSIDE: 2}}
    console = Console(record=True, width=200)
    print_drill(console, result)
    text = console.export_text()
    assert "point chosen with seed 42 (replay: --point random --seed 42 --older-than " \
           "604800s); 5 candidate(s), 2 skipped outside the recoverable window" in text
