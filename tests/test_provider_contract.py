"""The provider contract: the same assertions for every provider, through the `Provider`
protocol only, on real PostgreSQL (the local provider; the Supabase provider against the
emulator, whose projects are real clusters). A provider may lack a capability; then the
operation that needs it refuses with a usage error, never half-works."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import notes_environment
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
from spectral.providers.local.provider import LocalProvider
from spectral.recovery_target import TimeTarget
from supabase_emulator import EMU_REF

NOTES = "core.notes"


class Dashboard:
    """An operator for the drill: does what the instructions say (the emulator's "restore to a
    new project"), and answers every confirmation yes."""

    def __init__(self, emulator: object | None) -> None:
        self.emulator, self.performed = emulator, []   # type: list[str]

    def confirm(self, question: str, details: list[str]) -> bool:
        return True

    def perform(self, summary: str, steps: list[str]) -> None:
        self.performed.append(summary)
        text = " ".join(steps)
        if self.emulator is None:
            raise AssertionError(f"no operator action expected here: {text}")
        if found := re.search(r"\(unix (\d+)\)", text):
            self.emulator.restore_to_new_project(EMU_REF, int(found.group(1)))  # type: ignore[attr-defined]
        elif found := re.search(r"the backup of (\S+)", text):
            self.emulator.restore_backup_to_new_project(EMU_REF, found.group(1))  # type: ignore[attr-defined]


@dataclass
class Subject:
    environment: Environment
    dsn: str
    operator: Dashboard

    @property
    def provider(self) -> Provider:
        return self.environment.provider

    def copies(self) -> list[str]:
        """Copies still in existence (throwaway instances, restored projects)."""
        p = self.provider
        if isinstance(p, LocalProvider):        # the fixture's own view, not the contract's
            return [i.id for i in p.instances()]
        emu = self.operator.emulator
        return [r for r, pr in emu.projects.items() if pr.provider is None]  # type: ignore[attr-defined]

    def rows(self) -> list[int]:
        with connect(self.dsn) as conn:
            return [r[0] for r in conn.execute(f"select id from {NOTES} order by id")]

    def write(self, *ids: int) -> None:
        with connect(self.dsn) as conn:
            for i in ids:
                conn.execute(f"insert into {NOTES} values (%s, 'n')", (i,))


@pytest.fixture(params=["local", "supabase"])
def subject(request: pytest.FixtureRequest, work_dir: Path, bins: PgBinaries,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Subject]:
    if request.param == "local":
        with notes_environment(work_dir) as environment:
            provider = environment.provider
            assert isinstance(provider, LocalProvider)
            yield Subject(environment, provider.local.cluster().conninfo(), Dashboard(None))
        return
    from conftest import SUPABASE_TOKEN

    monkeypatch.setenv("SUPABASE_TEST_TOKEN", SUPABASE_TOKEN)
    work, emulator, dsn, _server = request.getfixturevalue("project")
    environment = open_environment(load_config(None, cwd=work), "production")
    yield Subject(environment, dsn, Dashboard(emulator))


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
    assert p.kind == subject.environment.config.provider.value
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
    subject.write(2, 3)
    result = run_functional(subject.environment, DrillRequest(copy=CopyRequest(wait=120)),
                            operator=subject.operator)
    assert result.outcome is DrillOutcome.PASS, (result.error, result.checks)
    assert {c.name.split(" (")[0] for c in result.checks} >= {
        "schema fingerprints", "row counts of load-bearing tables"}
    entry = subject.environment.ledger.entries()[-1]
    assert entry.kind is EntryKind.DRILL and entry.data["provider"] == subject.provider.kind
    assert entry.data["outcome"] == "pass"
    assert subject.copies() == []
    needs_person = Capability.UNATTENDED_COPY not in subject.provider.capabilities
    assert bool(subject.operator.performed) == needs_person


def test_a_copy_that_needs_a_person_is_not_made_unattended(subject: Subject) -> None:
    def drills() -> int:
        return sum(e.kind is EntryKind.DRILL for e in subject.environment.ledger.entries())

    before = drills()
    result = run_functional(subject.environment, DrillRequest(copy=CopyRequest(wait=30)),
                            operator=Unattended())
    if Capability.UNATTENDED_COPY in subject.provider.capabilities:
        assert result.outcome is DrillOutcome.PASS, result.error
    else:
        assert result.outcome is DrillOutcome.COULD_NOT_VERIFY
        assert result.error and "needs a person" in result.error
    assert drills() == before + 1                                   # recorded either way
    assert subject.copies() == []


def test_in_place_restore_to_a_time_holds_exactly_the_data_then(subject: Subject) -> None:
    subject.write(2)
    point = _whole_second_after_now()
    subject.write(3)
    with pytest.raises(RefusedError):
        subject.provider.restore_in_place(TimeTarget(point), confirmed=False)
    assert subject.rows() == [1, 2, 3]                                  # nothing changed
    done = subject.provider.restore_in_place(TimeTarget(point), confirmed=True)
    assert subject.rows() == [1, 2], done
    assert done.where == subject.provider.describe()


def test_what_it_cannot_do_it_refuses(subject: Subject) -> None:
    p = subject.provider
    if Capability.WAL_ARCHIVE not in p.capabilities:
        with pytest.raises(UsageError):
            p.wal_archive()
    else:
        archive = p.wal_archive()
        archive.flush()
        assert any("COMMIT" in line for line in archive.waldump())
    if Capability.ON_DEMAND_BACKUP not in p.capabilities:
        with pytest.raises(UsageError):
            p.backup()
    else:
        assert p.backup().id in {b.id for b in p.backups()}


def test_pitr_readiness_names_both_preconditions(subject: Subject) -> None:
    items = subject.provider.pitr_readiness(None, AssumeNo(), lambda _m: None)
    assert len(items) == 2 and all(i.text and i.evidence for i in items)
