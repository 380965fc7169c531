"""`spectral dr portability` and `spectral dr exit`: the provider exit (docs/provider-exit.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from spectral.cli.state import CliConfirmer, state
from spectral.errors import ExitCode

if TYPE_CHECKING:
    from rich.console import Console

    from spectral.exit.move import ExitResult

TO = typer.Option(None, "--to", help="The PostgreSQL elsewhere: another environment's name, a "
                  "DSN or a secret reference (default: the environment's exit_target).")
JOBS = typer.Option(2, "--jobs", min=1, max=64, help="Parallel pg_dump and restore sessions.")


def register(app: typer.Typer) -> None:
    app.command("portability")(portability_cmd)
    app.command("exit")(exit_cmd)


def portability_cmd(ctx: typer.Context, target: str | None = typer.Option(
        None, "--target", help="Check against this PostgreSQL: an environment's name, a DSN "
        "or a secret reference (default: the environment's exit_target, if any).")) -> None:
    """What the protected schemas depend on that a PostgreSQL elsewhere will not have, where
    each is used, and what the exit will do about it. Exit 1 when something has no plan."""
    from spectral.exit.portability import Plan, assess
    from spectral.exit.where import resolve_exit_target
    from spectral.pg.conn import connect

    st = state(ctx)
    environment = st.environment()
    to = target or environment.config.exit_target
    target_dsn = resolve_exit_target(st.config, to) if to else None
    with environment.database() as dsn, connect(dsn) as src:
        src.autocommit = True
        if target_dsn is None:
            report = assess(src, tuple(environment.config.schemas))
        else:
            with connect(target_dsn) as tgt:
                tgt.autocommit = True
                report = assess(src, tuple(environment.config.schemas), tgt)
    data = report.to_json()

    def human(c: Console) -> None:
        where = (f"PostgreSQL {report.target.major} as {report.target.user}" if report.target
                 else "a PostgreSQL elsewhere (no --target: availability not checked)")
        c.print(f"portability of {', '.join(report.schemas)} (PostgreSQL "
                f"{report.source_version_num // 10000}) into {where}")
        for item in report.items:
            c.print(f"  {item.plan.value:<9} {item.kind} {item.name}: {item.action}")
            if item.consequence:
                c.print(f"            consequence: {item.consequence}")
            uses = item.used_by[:3] + ([f"... {len(item.used_by) - 3} more"]
                                       if len(item.used_by) > 3 else [])
            for use in uses:
                c.print(f"            used by {use}")
        refused = [i for i in report.items if i.plan is Plan.REFUSE]
        c.print(f"{len(refused)} item(s) without a plan" if refused
                else "every dependency has a plan")

    st.emit(data, human)
    if report.refusals:
        raise typer.Exit(ExitCode.CHECK_FAILED)


def exit_cmd(ctx: typer.Context, to: str | None = TO,
             source_dsn: str | None = typer.Option(
                 None, "--source-dsn", help="Exit from this database (a restored copy, say): "
                 "a DSN or a secret reference (default: the live database, else a copy "
                 "restored from the latest backup)."),
             from_backup: bool = typer.Option(False, "--from-backup", help="Exit from a copy "
                                              "restored now, not from the live database."),
             target_time: str | None = typer.Option(None, "--target-time", help="With "
                                                    "--from-backup: restore the copy to this "
                                                    "time."),
             jobs: int = JOBS,
             yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask before writing "
                                      "into the target.")) -> None:
    """Move the protected schemas into a PostgreSQL elsewhere (logical, any major version, as
    a role that is not a superuser), prove the copy, write the re-invite list, and record it."""
    from spectral.config.secrets import is_secret_ref, resolve_secret
    from spectral.errors import UsageError
    from spectral.exit.move import Exit, ExitRequest
    from spectral.exit.where import resolve_exit_target
    from spectral.recovery_target import LatestTarget, TimeTarget, parse_time
    from spectral.redact import register_secret

    st = state(ctx)
    environment = st.environment()
    to = to or environment.config.exit_target
    if not to:
        raise UsageError("where to? pass --to (an environment, a DSN or a secret reference) "
                         "or set exit_target for the environment")
    if target_time is not None and not from_backup:
        raise UsageError("--target-time goes with --from-backup")
    source = None
    if source_dsn is not None:
        source = (resolve_secret(source_dsn, base_dir=st.config.base_dir)
                  if is_secret_ref(source_dsn) else source_dsn)
        register_secret(source)
    copy_at = ((TimeTarget(parse_time(target_time)) if target_time else LatestTarget())
               if from_backup else None)
    request = ExitRequest(resolve_exit_target(st.config, to), source, copy_at, jobs=jobs)
    report = (lambda m: st.err.print(f"exit: {m}")) if not st.json else (lambda _m: None)
    result: ExitResult = Exit(environment, request, CliConfirmer(yes, st.err), report).run()
    st.emit(result.to_json(), lambda c: _print(c, result))


def _print(c: Console, result: ExitResult) -> None:
    c.print(result.summary)
    for line in result.planned:
        c.print(f"  planned: {line}")
    for path in result.reinvites:
        c.print(f"  re-invites: {path}")
