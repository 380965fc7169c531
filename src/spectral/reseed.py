"""Re-seed recovery, the runbook's pre-PITR path: reset (drop and recreate the protected schemas
from the migrations) -> cold-start seed -> authoring harness. Refused when the environment holds
data that is not regenerable."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg

from spectral.config.models import Posture
from spectral.confirm import Confirmer
from spectral.errors import RefusedError
from spectral.pg.conn import connect
from spectral.refdb import REFERENCE_SCHEMAS
from spectral.refdb.author import AuthorResult, author
from spectral.refdb.migrate import migrate
from spectral.refdb.seed import Progress, SeedResult, seed

if TYPE_CHECKING:
    from spectral.environment import Environment


@dataclass(frozen=True)
class SchemaFootprint:
    name: str
    tables: int
    rows: int
    size_bytes: int


@dataclass
class ResetPlan:
    environment: str
    schemas: list[SchemaFootprint]
    auth_users: int
    partner_corpora: list[str]
    blockers: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        lines = [f"drop schema {s.name}: {s.tables} tables, {s.rows:,} rows, "
                 f"{s.size_bytes / 1e6:.1f} MB" for s in self.schemas]
        if self.auth_users:
            lines.append(f"delete {self.auth_users:,} rows of auth.users")
        lines.append("recreate core, worlds, platform from the migrations")
        return lines


def _footprint(conn: psycopg.Connection[Any], schema: str) -> SchemaFootprint | None:
    row = conn.execute(
        "select count(c.oid), coalesce(sum(pg_total_relation_size(c.oid)), 0) from pg_namespace n "
        "left join pg_class c on c.relnamespace = n.oid and c.relkind in ('r', 'm') "
        "where n.nspname = %s group by n.oid", (schema,)).fetchone()
    if row is None:
        return None
    rows = 0
    for (table,) in conn.execute(
            "select format('%%I.%%I', n.nspname, c.relname) from pg_class c join pg_namespace n "
            "on n.oid = c.relnamespace where n.nspname = %s and c.relkind = 'r'", (schema,)):
        counted = conn.execute(f"select count(*) from {table}").fetchone()
        rows += int(counted[0]) if counted else 0
    return SchemaFootprint(schema, int(row[0]), rows, int(row[1]))


def partner_corpora(conn: psycopg.Connection[Any]) -> list[str]:
    """Partner-owned corpora present: that data is load-bearing and not regenerable."""
    reg = conn.execute("select to_regclass('platform.corpora')").fetchone()
    if reg is None or reg[0] is None:
        return []
    return [f"{slug} ({n:,} rules)" for slug, n in conn.execute(
        "select c.slug, count(r.id) from platform.corpora c left join platform.rules r "
        "on r.corpus_id = c.id where c.owner = 'partner' group by c.slug order by c.slug")]


def plan_reset(conn: psycopg.Connection[Any], environment: Environment) -> ResetPlan:
    env = environment.config
    schemas = sorted(set(env.schemas) | set(REFERENCE_SCHEMAS))
    prints = [fp for s in schemas if (fp := _footprint(conn, s)) is not None]
    reg = conn.execute("select to_regclass('auth.users')").fetchone()
    auth_users = 0
    if reg is not None and reg[0] is not None:
        counted = conn.execute("select count(*) from auth.users").fetchone()
        auth_users = int(counted[0]) if counted else 0
    plan = ResetPlan(environment.name, prints, auth_users, partner_corpora(conn))
    if env.posture is not Posture.ALPHA:
        plan.blockers.append(f"posture tier is {env.posture.value}: recovery is restore, "
                             f"not re-seed")
    if plan.partner_corpora:
        plan.blockers.append("partner-owned data is not regenerable: "
                             + ", ".join(plan.partner_corpora))
    return plan


def _check(plan: ResetPlan, confirmer: Confirmer, force: bool) -> None:
    if plan.blockers and not force:
        raise RefusedError(f"refusing to reset {plan.environment}: {'; '.join(plan.blockers)}",
                           hint="--force overrides this, after you have exported that data")
    if not confirmer.confirm(f"Destroy and recreate these in {plan.environment}?",
                             plan.describe()):
        raise RefusedError(f"reset of {plan.environment} not confirmed; nothing was changed",
                           hint="--yes confirms non-interactively")


def reset(environment: Environment, dsn: str, confirmer: Confirmer, *,
          force: bool = False) -> ResetPlan:
    """Drop the protected schemas of the environment's database (`dsn`, opened by the caller)
    and re-apply the migrations, all in one transaction: if any step fails, nothing was
    dropped."""
    with connect(dsn) as conn:
        plan = plan_reset(conn, environment)
        _check(plan, confirmer, force)
        with conn.transaction():
            for fp in plan.schemas:
                conn.execute(f'drop schema "{fp.name}" cascade')
            conn.execute("drop schema if exists supabase_migrations cascade")
            if plan.auth_users:
                conn.execute("delete from auth.users")
            migrate(conn)
    return plan


@dataclass(frozen=True)
class ReseedResult:
    plan: ResetPlan
    seed: SeedResult
    author: AuthorResult
    seconds: float


def reseed(environment: Environment, dsn: str, confirmer: Confirmer, *, scale: int = 1,
           force: bool = False, progress: Progress | None = None) -> ReseedResult:
    started = time.monotonic()
    plan = reset(environment, dsn, confirmer, force=force)
    seeded = seed(dsn, scale, progress)
    with connect(dsn) as conn:
        authored = author(conn)
    return ReseedResult(plan, seeded, authored, time.monotonic() - started)


def ensure_empty_world(conn: psycopg.Connection[Any]) -> None:
    """`db seed` loads into an empty, migrated world only."""
    reg = conn.execute("select to_regclass('worlds.returns')").fetchone()
    if reg is None or reg[0] is None:
        migrate(conn)
        return
    migrate(conn)
    for table in ("core.orgs", "worlds.returns", "auth.users"):
        row = conn.execute(f"select exists (select 1 from {table})").fetchone()
        if row and row[0]:
            raise RefusedError(f"{table} already holds rows; the seed loads an empty world only",
                               hint="spectral db reseed resets and seeds")
