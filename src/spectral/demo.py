"""The main job on the embedded default (the README's first command): a real functional drill on
a real PostgreSQL. The environment is created, seeded with the reference database and backed up
first when it has none of these yet."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

from spectral.confirm import AssumeYes
from spectral.drills.functional import DrillRequest, run_functional
from spectral.drills.result import DrillResult
from spectral.environment import Environment
from spectral.pg.conn import connect
from spectral.providers.base import Capability, Progress, Report, require
from spectral.refdb.seed import Progress as SeedProgress
from spectral.reseed import reseed


def run_demo(environment: Environment, *, scale: int = 1, report: Report = lambda _m: None,
             seed_progress: Callable[[], AbstractContextManager[SeedProgress | None]] =
             lambda: nullcontext(None),
             restore_progress: Callable[[], AbstractContextManager[Progress | None]] =
             lambda: nullcontext(None)) -> DrillResult:
    provider = environment.provider
    require(provider, Capability.ON_DEMAND_BACKUP, "the demo",
            "run spectral dr drill functional on this environment instead")
    report(f"{provider.describe()} ({provider.kind}) under {environment.state_dir}")
    with environment.database() as dsn:
        if _world_is_empty(dsn):
            report(f"seeding the reference database (scale {scale})")
            with seed_progress() as bar:
                reseed(environment, dsn, AssumeYes(), scale=scale, progress=bar)
        if not provider.backups():
            report("taking the first base backup")
            provider.backup()
        report("running a functional drill")
        with restore_progress() as progress:
            return run_functional(environment, DrillRequest(), report=report,
                                  progress=progress)


def _world_is_empty(conninfo: str) -> bool:
    with connect(conninfo) as conn:
        row = conn.execute("select to_regclass('core.orgs')").fetchone()
        if row is None or row[0] is None:
            return True
        row = conn.execute("select exists (select 1 from core.orgs)").fetchone()
    return not (row and row[0])


