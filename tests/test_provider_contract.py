"""The provider contract: the same assertions for every provider, through the `Provider`
protocol and the command line only, on real PostgreSQL: the local provider, the Supabase
provider against the emulator (whose projects are real clusters) and the pgBackRest provider on
real pgBackRest (skipped, with the reason, where pgbackrest is not installed). A provider may
lack a capability; then what needs it is refused in one line (exit 2), never half-done.

One environment per provider for the whole module: every test starts from whatever the tests
before it left (more rows, an in-place restore behind it) and asserts only what it did itself."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import SUPABASE_TOKEN, SYSTEM_PG15, _processes_under, notes_environment, spectral
from contract_attached import ATTACHED_LACKS, team_world
from spectral.config.load import load_config
from spectral.confirm import AssumeNo, Unattended
from spectral.drills.functional import DrillRequest, run_functional
from spectral.drills.result import DrillOutcome
from spectral.drills.status import facts
from spectral.environment import Environment, open_environment
from spectral.errors import RefusedError, UsageError
from spectral.ledger import EntryKind
from spectral.pg.binaries import PgBinaries
from spectral.pg.conn import connect
from spectral.providers.base import Backup, Capability, CopyRequest, Provider
from spectral.recovery_target import TimeTarget
from supabase_emulator import EMU_REF, Emulator

NOTES = "core.notes"
PROVIDERS = ["local", "supabase", "pgbackrest", "attached-pgbackrest", "archive", "barman-cloud"]


class Dashboard:
    """An operator for the drill: does what the instructions say (the emulator's "restore to a
    new project"), and answers every confirmation yes."""

    def __init__(self, emulator: Emulator | None) -> None:
        self.emulator, self.performed = emulator, []   # type: list[str]

    def confirm(self, question: str, details: list[str]) -> bool:
        return True

    def perform(self, summary: str, steps: list[str]) -> None:
        self.performed.append(summary)
        text = " ".join(steps)
        if self.emulator is None:
            raise AssertionError(f"no operator action expected here: {text}")
        if found := re.search(r"\(unix (\d+)\)", text):
            self.emulator.restore_to_new_project(EMU_REF, int(found.group(1)))
        elif found := re.search(r"the backup of (\S+)", text):
            self.emulator.restore_backup_to_new_project(EMU_REF, found.group(1))


@dataclass
class Subject:
    """One provider's environment, shared by the module's tests."""

    environment: Environment
    config: Path                             # its spectral.toml
    operator: Dashboard
    copies_left: Callable[[Subject], list[str]]
    lacks: frozenset[str] = frozenset()      # what of OPERATIONS the provider does not offer
    writer: str | None = None                # where the tests write, when spectral only reads
    reads_only: bool = False                 # a team's own backups: in-place restore refused
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000))

    @property
    def provider(self) -> Provider:
        return self.environment.provider

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The command line on this environment, as a user runs it."""
        return spectral("--env", self.environment.name, *args, cwd=self.config.parent)

    def copies(self) -> list[str]:
        """Copies still in existence (throwaway instances, restored projects)."""
        return self.copies_left(self)

    def dsn(self) -> str:
        if self.writer is not None:          # the team's own role: spectral's only reads
            return self.writer
        dsn = self.provider.running_source()
        assert dsn is not None, "the source is not running"
        return dsn

    def rows(self) -> list[int]:
        with connect(self.dsn()) as conn:
            return [r[0] for r in conn.execute(f"select id from {NOTES} order by id")]

    def write(self) -> int:
        """A new row in its own transaction; its id."""
        row = next(self.ids)
        with connect(self.dsn()) as conn:
            conn.execute(f"insert into {NOTES} values (%s, 'n')", (row,))
        return row

    def drills(self) -> int:
        return sum(e.kind is EntryKind.DRILL for e in self.environment.ledger.entries())


def _instances(subject: Subject) -> list[str]:
    listed = subject.cli("dr", "instances", "--json")
    assert listed.returncode == 0, listed.stderr
    return [i["id"] for i in json.loads(listed.stdout)]


def _notes_schema(dsn: str) -> None:
    from spectral.refdb.migrate import migrate

    with connect(dsn) as conn:
        migrate(conn)            # the reference schema: the core contract holds
        conn.execute(f"create table {NOTES} (id int primary key, note text)")
        conn.execute(f"insert into {NOTES} values (1, 'base')")


@contextlib.contextmanager
def _local(root: Path, bins: PgBinaries) -> Iterator[Subject]:
    with notes_environment(root) as environment:
        yield Subject(environment, root / "spectral.toml", Dashboard(None), _instances)


@contextlib.contextmanager
def _supabase(root: Path, bins: PgBinaries) -> Iterator[Subject]:
    """Production on Supabase: the emulator, its project a local environment of its own."""
    from spectral.providers.local.environment import LocalEnvironment
    from spectral.providers.local.provider import LocalProvider
    from supabase_emulator import Project, Server

    local = LocalEnvironment("emu", root / "emu-state", bins)
    local.up()
    sockets = Path(tempfile.mkdtemp(prefix="emu-", dir="/tmp"))   # short socket paths
    emulator = Emulator(SUPABASE_TOKEN, {EMU_REF: Project(EMU_REF, LocalProvider(local))},
                        sockets=sockets)
    try:
        dsn = emulator.expose(EMU_REF, local.cluster().conninfo())
        _notes_schema(dsn)
        LocalProvider(local).backup()
        with Server(emulator) as server, pytest.MonkeyPatch.context() as env:
            env.setenv("SUPABASE_TEST_TOKEN", SUPABASE_TOKEN)
            (root / "spectral.toml").write_text(
                f'[environments.production]\nprovider = "supabase"\nproject_ref = "{EMU_REF}"\n'
                f'posture = "pitr"\ndsn = "{dsn}"\naccess_token = "env:SUPABASE_TEST_TOKEN"\n'
                f'api_url = "{server.url}"\nschemas = ["core"]\n'
                f'load_bearing_tables = ["{NOTES}"]\n')
            environment = open_environment(load_config(None, cwd=root), "production")
            yield Subject(environment, root / "spectral.toml", Dashboard(emulator),
                          lambda _s: [r for r, p in emulator.projects.items()
                                      if p.provider is None],
                          lacks=frozenset(OPERATIONS))
    finally:
        emulator.close()
        local.down()
        shutil.rmtree(sockets, ignore_errors=True)
    assert emulator.spec_errors == [], "\n".join(dict.fromkeys(emulator.spec_errors))


@contextlib.contextmanager
def _pgbackrest(root: Path, bins: PgBinaries) -> Iterator[Subject]:
    """pgBackRest on Debian's PostgreSQL 15, a POSIX repository, started as a user does."""
    if shutil.which("pgbackrest") is None or not (SYSTEM_PG15 / "postgres").exists():
        pytest.skip("needs /usr/bin/pgbackrest and Debian's PostgreSQL 15 (python3 dev.py test "
                    "installs both)")
    (root / "spectral.toml").write_text(
        f'[environments.pgb]\nprovider = "pgbackrest"\nposture = "pitr"\n'
        f'pg_bin_dir = "{SYSTEM_PG15}"\nschemas = ["core"]\nload_bearing_tables = ["{NOTES}"]\n'
        f'[environments.pgb.pgbackrest]\nstanza = "contract"\n'
        f'[[environments.pgb.pgbackrest.repositories]]\ntype = "posix"\n'
        f'path = "{root / "repo"}"\n')
    environment = open_environment(load_config(None, cwd=root), "pgb")
    subject = Subject(environment, root / "spectral.toml", Dashboard(None), _instances,
                      lacks=frozenset({"stream WAL"}))
    try:
        up = subject.cli("local", "up")
        assert up.returncode == 0, up.stderr
        _notes_schema(subject.dsn())
        subject.provider.backup()
        yield subject
    finally:
        if subject.cli("dr", "instances", "--json").stdout.strip() not in ("", "[]"):
            subject.cli("dr", "teardown", "--all")      # what a failed test left
        subject.cli("local", "down")


@contextlib.contextmanager
def _attached(kind: str, root: Path, bins: PgBinaries) -> Iterator[Subject]:
    """A team's own backups, read (issue 30): see contract_attached.py."""
    with team_world(kind, root, bins, _notes_schema) as (name, _team, writer):
        environment = open_environment(load_config(None, cwd=root), name)
        subject = Subject(environment, root / "spectral.toml", Dashboard(None), _instances,
                          lacks=ATTACHED_LACKS, writer=writer, reads_only=True)
        try:
            yield subject
        finally:
            subject.cli("dr", "teardown", "--all")      # what a failed test left


@pytest.fixture(scope="module", params=PROVIDERS)
def subject(request: pytest.FixtureRequest, base_dir: Path, bins: PgBinaries) -> Iterator[Subject]:
    root = Path(tempfile.mkdtemp(prefix=f"contract-{request.param}-", dir=base_dir))
    root.chmod(0o755)
    make = {"local": _local, "supabase": _supabase, "pgbackrest": _pgbackrest}.get(
        request.param, functools.partial(_attached, request.param))
    with make(root, bins) as subject:
        yield subject
    assert _processes_under(root) == []


def _whole_second_after_now() -> datetime:
    """A moment strictly between what was committed before and what is committed after (the
    Management API takes whole seconds)."""
    now = time.time()
    time.sleep(int(now) + 1.2 - now)
    point = datetime.fromtimestamp(int(now) + 1, UTC)
    time.sleep(1.1)
    return point


def test_it_describes_itself(subject: Subject) -> None:
    p = subject.provider
    assert p.kind == subject.environment.config.provider
    assert p.describe() and all(isinstance(c, Capability) for c in p.capabilities)


def test_backups_and_the_recoverable_window(subject: Subject) -> None:
    backups = subject.provider.backups()
    assert backups and all(isinstance(b, Backup) for b in backups)
    assert any(b.usable for b in backups)
    window = subject.provider.window()
    assert not window.empty and window.earliest_time is not None
    assert window.latest_time is not None and window.earliest_time <= window.latest_time
    found = facts(subject.environment)      # the newest restorable point, for dr status
    assert found.newest_backup is not None
    assert found.newest_backup[1] >= max(b.stop_time for b in backups if b.usable)


def test_a_drill_passes_and_is_recorded_with_no_copy_left(subject: Subject) -> None:
    subject.write()
    subject.write()
    before = len(subject.operator.performed)
    unattended = Capability.UNATTENDED_COPY in subject.provider.capabilities
    result = run_functional(subject.environment, DrillRequest(copy=CopyRequest(wait=120)),
                            operator=Unattended() if unattended else subject.operator)
    assert result.outcome is DrillOutcome.PASS, (result.error, result.checks)
    assert {c.name.split(" (")[0] for c in result.checks} >= {
        "schema fingerprints", "row counts of load-bearing tables"}
    entry = subject.environment.ledger.entries()[-1]
    assert entry.kind is EntryKind.DRILL and entry.data["provider"] == subject.provider.kind
    assert entry.data["outcome"] == "pass"
    assert subject.copies() == []
    needs_person = Capability.UNATTENDED_COPY not in subject.provider.capabilities
    assert (len(subject.operator.performed) > before) == needs_person


def test_a_copy_that_needs_a_person_is_not_made_unattended(subject: Subject) -> None:
    """(A provider whose copies need nobody drilled unattended in the test before.)"""
    if Capability.UNATTENDED_COPY in subject.provider.capabilities:
        assert subject.operator.performed == []          # nobody was ever asked to act
        return
    before = subject.drills()
    result = run_functional(subject.environment, DrillRequest(copy=CopyRequest(wait=30)),
                            operator=Unattended())
    assert result.outcome is DrillOutcome.COULD_NOT_VERIFY
    assert result.error and "needs a person" in result.error
    assert subject.drills() == before + 1                              # recorded either way
    assert subject.copies() == []


# What not every provider offers, as a user asks for it: a command line that needs nothing else.
OPERATIONS: dict[str, list[str]] = {
    "read the WAL": ["dr", "find-damage", "--table", NOTES],
    "take a backup": ["dr", "backup"],
    "undo an in-place restore": ["dr", "restore", "--undo", "--yes"],
    "restore to an xid": ["dr", "restore", "--target-xid", "1000"],
    "list instances": ["dr", "instances"],
    "expire backups": ["dr", "expire", "--keep", "1", "--dry-run"],
    "stream WAL": ["dr", "wal", "stream", "--seconds", "1"],
}
# ... and whether the provider says it offers it: its capability object, or its flag
OFFERED: dict[str, Callable[[Provider], bool]] = {
    "read the WAL": lambda p: p.wal_archive() is not None,
    "take a backup": lambda p: Capability.ON_DEMAND_BACKUP in p.capabilities,
    "undo an in-place restore": lambda p: p.in_place_undo() is not None,
    "restore to an xid": lambda p: Capability.ANY_TARGET in p.capabilities,
    "list instances": lambda p: p.restored_instances() is not None,
    "expire backups": lambda p: p.retention() is not None,
    "stream WAL": lambda p: p.wal_stream() is not None,
}


def test_what_it_lacks_is_what_it_says_it_lacks(subject: Subject) -> None:
    """The fixture's expectation and the provider's own objects agree: a provider that stopped
    handing out a capability (or began to) is seen here, not only as a changed refusal."""
    assert set(OFFERED) == set(OPERATIONS)
    says = {name for name, offered in OFFERED.items() if not offered(subject.provider)}
    assert says == subject.lacks


def test_what_it_offers_works(subject: Subject) -> None:
    p = subject.provider
    if "read the WAL" not in subject.lacks:
        subject.write()
        archive = p.wal_archive()
        assert archive is not None
        archive.flush()
        assert any("COMMIT" in line for line in archive.waldump())
    if "take a backup" not in subject.lacks:
        assert p.backup().id in {b.id for b in p.backups()}


def test_what_it_cannot_do_it_refuses_in_one_line(subject: Subject) -> None:
    for name in sorted(subject.lacks):
        done = subject.cli(*OPERATIONS[name])
        lines = done.stderr.splitlines()
        assert done.returncode == 2 and lines and lines[0].startswith("spectral: error: "), \
            (name, done)
        assert all(line.startswith("  hint: ") for line in lines[1:]), (name, done.stderr)
        assert "internal error" not in done.stderr, (name, done.stderr)
        assert done.stdout == "", (name, done.stdout)
    if "take a backup" in subject.lacks:
        with pytest.raises(UsageError):
            subject.provider.backup()


def test_pitr_readiness_names_both_preconditions(subject: Subject) -> None:
    items = subject.provider.pitr_readiness(AssumeNo(), lambda _m: None)
    assert len(items) == 2 and all(i.text and i.evidence for i in items)


def test_in_place_restore_to_a_time_holds_exactly_the_data_then(subject: Subject) -> None:
    """Last: it rewinds the environment (the tests before it do not depend on that)."""
    kept = [*subject.rows(), subject.write()]
    if subject.reads_only:                       # it only reads: refused, nothing changed
        with pytest.raises(UsageError, match="never"):
            subject.provider.restore_in_place(TimeTarget(datetime.now(UTC)), confirmed=True,
                                              report=lambda _m: None)
        assert subject.rows() == kept
        return
    point = _whole_second_after_now()
    lost = subject.write()
    with pytest.raises(RefusedError):
        subject.provider.restore_in_place(TimeTarget(point), confirmed=False,
                                          report=lambda _m: None)
    assert subject.rows() == [*kept, lost]                              # nothing changed
    done = subject.provider.restore_in_place(TimeTarget(point), confirmed=True,
                                             report=lambda _m: None)
    assert subject.rows() == kept, done
    assert done.where == subject.provider.describe()
