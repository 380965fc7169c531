"""`spectral db ...`: the reference database, the cold-start seed, the authoring harness and the
re-seed recovery path."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import typer

from spectral.cli import rules_cmds
from spectral.cli.state import CliConfirmer, state

if TYPE_CHECKING:
    from rich.console import Console

    from spectral.reseed import ReseedResult

app = typer.Typer(no_args_is_help=True, help="The reference database: migrate, seed, author, "
                                             "reset and re-seed.")

rules_cmds.register(app)

YES = typer.Option(False, "--yes", "-y", help="Confirm destructive actions without asking.")
FORCE = typer.Option(False, "--force", help="Reset even when the environment holds data that "
                                           "is not regenerable (partner corpora, tier pro/pitr).")
SCALE = typer.Option(1, "--scale", min=1, help="Seed scale: 1 is about 10 MB, linear upward.")


@app.command("migrate")
def migrate_cmd(ctx: typer.Context) -> None:
    """Apply pending migrations of the reference database."""
    from spectral.pg.conn import connect
    from spectral.refdb.migrate import migrate

    st = state(ctx)
    environment = st.environment()
    with environment.database() as dsn, connect(dsn) as conn:
        ran = migrate(conn)
    names = [f"{m.version}_{m.name}" for m in ran]
    st.emit({"environment": environment.name, "applied": names},
            lambda c: c.print(f"applied {len(names)} migration(s)"
                              + (": " + ", ".join(names) if names else "")))


@app.command("seed")
def seed_cmd(ctx: typer.Context, scale: int = SCALE) -> None:
    """Generate the tax-prep world deterministically into an empty database (COPY)."""
    from spectral.cli.progress import seed_progress
    from spectral.pg.conn import connect
    from spectral.refdb.seed import seed
    from spectral.reseed import ensure_empty_world

    st = state(ctx)
    environment = st.environment()
    with environment.database() as dsn:
        with connect(dsn) as conn:
            ensure_empty_world(conn)
        with seed_progress(scale, enabled=not st.json and sys.stderr.isatty()) as progress:
            result = seed(dsn, scale, progress)
    data = {"environment": environment.name, "scale": scale, "rows": result.rows,
            "bytes": result.bytes_sent, "seconds": round(result.seconds, 3)}
    st.emit(data, lambda c: c.print(
        f"seeded {sum(result.rows.values()):,} rows ({result.bytes_sent / 1e6:.1f} MB) in "
        f"{result.seconds:.1f} s"))


@app.command("author")
def author_cmd(ctx: typer.Context,
               rules: int = typer.Option(400, "--rules", min=1, help="Rules per corpus.")) -> None:
    """Regenerate the Spectral-owned rule corpora (partner corpora are never touched)."""
    from spectral.pg.conn import connect
    from spectral.refdb.author import author

    st = state(ctx)
    environment = st.environment()
    with environment.database() as dsn, connect(dsn) as conn:
        result = author(conn, rules_per_corpus=rules)
    st.emit({"environment": environment.name, "corpora": result.corpora, "rules": result.rules},
            lambda c: c.print(f"authored {result.corpora} corpora, {result.rules:,} rules"))


@app.command("reset")
def reset_cmd(ctx: typer.Context, yes: bool = YES, force: bool = FORCE) -> None:
    """Drop and recreate the protected schemas from the migrations (asks first)."""
    from spectral.reseed import reset

    st = state(ctx)
    environment = st.environment()
    with environment.database() as dsn:
        plan = reset(environment, dsn, CliConfirmer(yes, st.err), force=force)
    st.emit({"environment": environment.name, "dropped": [s.name for s in plan.schemas]},
            lambda c: c.print(f"{environment.name}: reset; schemas recreated from the "
                              f"migrations"))


@app.command("reseed")
def reseed_cmd(ctx: typer.Context, scale: int = SCALE, yes: bool = YES,
               force: bool = FORCE) -> None:
    """Re-seed recovery (pre-PITR alpha): reset -> seed -> author. Asks first; refuses when
    the data is not regenerable unless --force."""
    from spectral.cli.progress import seed_progress
    from spectral.reseed import reseed

    st = state(ctx)
    show = not st.json and sys.stderr.isatty()
    environment = st.environment()
    with environment.database() as dsn, seed_progress(scale, show) as progress:
        result = reseed(environment, dsn, CliConfirmer(yes, st.err), scale=scale, force=force,
                        progress=progress)
    name = environment.name
    st.emit(reseed_json(name, result), lambda c: print_reseed(c, name, result))


def reseed_json(name: str, result: ReseedResult) -> dict[str, Any]:
    return {"environment": name, "scale": result.seed.scale, "rows": result.seed.rows,
            "rules": result.author.rules, "corpora": result.author.corpora,
            "seed_seconds": round(result.seed.seconds, 3), "seconds": round(result.seconds, 3),
            "seed_bytes": result.seed.bytes_sent}


def print_reseed(c: Console, name: str, result: ReseedResult) -> None:
    rows = sum(result.seed.rows.values())
    c.print(f"{name}: re-seeded at scale {result.seed.scale}: {rows:,} rows "
            f"({result.seed.bytes_sent / 1e6:.1f} MB) in {result.seed.seconds:.1f} s, "
            f"{result.author.rules:,} rules in {result.author.corpora} corpora; "
            f"{result.seconds:.1f} s in all")
