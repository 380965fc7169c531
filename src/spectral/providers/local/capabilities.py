"""What the local provider (and the pgBackRest provider on the same managed cluster) hands out
as capability objects: backup options, retention, restored instances, in-place restore with
undo, WAL streaming and its status (spectral/providers/capabilities.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from spectral.confirm import Confirmer
from spectral.errors import RefusedError, UsageError
from spectral.providers.base import InPlaceResult, Instance, Progress
from spectral.providers.capabilities import (
    NO_OPTIONS,
    ExpirePlan,
    Options,
    StreamRun,
    UndoOutcome,
    refuse_options,
)
from spectral.recovery_target import RecoveryTarget

if TYPE_CHECKING:
    from spectral.providers.local.instances import Registry
    from spectral.providers.local.provider import LocalProvider


class LocalBackupOptions:
    """Full and incremental backups (PostgreSQL 17+) into the one repository."""

    def __init__(self, who: str) -> None:
        self.who = who

    def declared(self) -> dict[str, str]:
        return {"type": "full or incr (incremental, PostgreSQL 17+)"}

    def parse(self, given: Options, *, restore: bool = False) -> Options:
        if "process_max" in given:
            raise UsageError("--process-max is for pgbackrest environments (pgBackRest's "
                             "process-max)")
        if given.get("type", "full") == "diff" or "repo" in given:
            raise UsageError(f"{self.who} takes full and incremental (--type incr, PostgreSQL "
                             f"17+) backups into its one repository; differential backups and "
                             f"--repo are for pgbackrest environments")
        declared = {} if restore else self.declared()
        refuse_options(given, declared, self.who)
        kind = given.get("type", "full")
        if kind not in ("full", "incr"):
            raise UsageError(f"--type {kind!r}: expected full or incr")
        return dict(given)


class LocalRetention:
    def __init__(self, provider: LocalProvider) -> None:
        self.p = provider

    def expire(self, keep: int, window_days: float | None, operator: Confirmer, *,
               dry_run: bool = False) -> ExpirePlan:
        from spectral.providers.local.expire import expire

        return expire(self.p.strategy, self.p.busy, keep, window_days, operator,
                      dry_run=dry_run)


class Restores(Protocol):
    """What restored instances need of a provider: its restores into new instances and their
    registry (the managed provider's and an attached one's)."""

    @property
    def registry(self) -> Registry: ...

    def restore(self, target: RecoveryTarget, *, pause: bool = False,
                progress: Progress | None = None, backup_id: str | None = None,
                keep: bool = True, options: Options = NO_OPTIONS) -> Instance: ...


class LocalInstances:
    def __init__(self, provider: Restores) -> None:
        self.p = provider

    def restore(self, target: RecoveryTarget, *, pause: bool = False,
                progress: Progress | None = None, options: Options = NO_OPTIONS,
                backup_id: str | None = None) -> Instance:
        return self.p.restore(target, pause=pause, progress=progress, options=options,
                              backup_id=backup_id)

    def listed(self) -> list[Instance]:
        return self.p.registry.instances()

    def is_running(self, instance: Instance) -> bool:
        return self.p.registry.cluster_of(instance).is_running()

    def teardown(self, instance_id: str) -> bool:
        return self.p.registry.teardown(instance_id)

    def orphans(self) -> list[str]:
        return self.p.registry.orphans()

    def promote(self, instance_id: str) -> Instance:
        """Promote an instance restored with `pause` once it has been inspected."""
        from spectral.pg.conn import connect

        inst = next((i for i in self.listed() if i.id == instance_id), None)
        if inst is None:
            raise UsageError(f"no restored instance {instance_id!r} (spectral dr instances)")
        with connect(inst.dsn) as conn:
            conn.execute("select pg_promote(true, 60)")
        return inst


class LocalInPlace:
    def __init__(self, provider: LocalProvider) -> None:
        self.p = provider

    def restore(self, target: RecoveryTarget, *, confirmed: bool,
                progress: Progress | None = None,
                options: Options = NO_OPTIONS) -> InPlaceResult:
        p = self.p
        restorer = p.restorer_for(p.backup_options().parse(options, restore=True))
        started = time.monotonic()
        done = p.in_place_with(restorer).restore(target, confirmed=confirmed,
                                                 progress=progress)
        return InPlaceResult(p.local.name, p.describe(), done.target,
                             time.monotonic() - started,
                             f"the previous data directory is kept at {done.previous} "
                             f"(spectral dr restore --undo)", done.backup, done.previous,
                             list(done.discarded), reached=done.reached)

    def undo(self, operator: Confirmer | None = None) -> UndoOutcome:
        p = self.p
        with p.busy("undo"):   # a killed restore or undo is put right first
            pass
        if operator is not None:
            details = p.in_place.undo_preview()
            if not details:
                raise RefusedError("there is no in-place restore to undo (only the newest one "
                                   "can be undone, once)")
            if not operator.confirm("Undo the last in-place restore?", details):
                raise RefusedError("not confirmed; nothing was changed")
        return p.in_place.undo()

    def discard(self, operator: Confirmer | None = None) -> list[str]:
        in_place = self.p.in_place
        details = [str(d) for d in in_place.kept_aside() + in_place.undone()]
        if operator is not None and details and not operator.confirm(
                "Delete these kept-aside data directories for good?", details):
            raise RefusedError("not confirmed; nothing was changed")
        return in_place.discard()

    def recover_if_idle(self) -> None:
        self.p.recover_if_idle()


class LocalWalStream:
    def __init__(self, provider: LocalProvider) -> None:
        self.p = provider

    def stream(self, *, synchronous: bool, should_stop: Callable[[], bool],
               outage_limit: float, report: Callable[[str], None]) -> StreamRun:
        from spectral.providers.local.stream import supervise

        local = self.p.local
        with local.session() as cluster:
            if local.stream_release:
                report(local.stream_release)
            return supervise(self.p.bins, cluster, self.p.repo.stream, synchronous=synchronous,
                             report=report, should_stop=should_stop,
                             outage_limit=outage_limit)


class LocalWalStatus:
    def __init__(self, provider: LocalProvider) -> None:
        self.p = provider

    def read(self) -> dict[str, Any]:
        from spectral.providers.local.stream import wal_status

        local = self.p.local
        with local.session() as cluster:
            return wal_status(cluster, self.p.repo.stream, released=local.stream_release)
