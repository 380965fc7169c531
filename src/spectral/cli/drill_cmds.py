"""`spectral dr drill functional | post-migration`, `spectral dr log [verify]`."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from spectral.cli.fleet_cmds import alert_drill
from spectral.cli.outfile import check_writable
from spectral.cli.state import AppState, CliConfirmer, state
from spectral.config.durations import format_duration
from spectral.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from rich.console import Console

    from spectral.drills.functional import DrillRequest
    from spectral.drills.integrity import AmcheckLevel
    from spectral.drills.random_point import RandomPoint
    from spectral.drills.result import DrillResult
    from spectral.ledger import Ledger
    from spectral.providers.base import CopyRequest

drill_app = typer.Typer(no_args_is_help=True, help="Restore drills that prove a backup restores.")
log_app = typer.Typer(invoke_without_command=True,
                      help="The evidence ledger: drills, tabletops, incidents, activations, "
                           "snapshots.")

BACKUP = typer.Option(None, "--backup", help="Restore from this backup id (default: the newest "
                                            "backup before the recovery point).")
TARGET_TIME = typer.Option(None, "--target-time", help="Restore to the snapshot taken at or just "
                                                      "before this time.")
CONTENT = typer.Option(False, "--content", help="Also compare every row's content checksum.")
KEEP = typer.Option(False, "--keep", help="Leave the restored instance up and print its DSN "
                                         "(for debugging).")
JUNIT = typer.Option(None, "--junit", dir_okay=False, help="Also write the result as JUnit XML "
                     "to FILE (a testcase per check), for CI systems.")

AMCHECK = typer.Option(None, "--amcheck", metavar="basic|thorough",
                       help="pg_amcheck on the restored copy: basic (B-tree indexes and heap "
                            "tables) or thorough (also --heapallindexed --parent-check); "
                            "default: thorough when the newest drill that ran it is older than "
                            "amcheck_thorough_every, else basic.")


POINT = typer.Option(None, "--point", metavar="random",
                     help="random: restore to a stored snapshot older than --older-than, chosen "
                          "at random (the seed is printed and recorded), from the OLDEST backup "
                          "that reaches it, and compare with that snapshot.")
SEED = typer.Option(None, "--seed", min=0, help="With --point random: replay the choice made "
                                                 "with this seed.")
OLDER_THAN = typer.Option(None, "--older-than", help="With --point random: how old the snapshot "
                                                    "must be (e.g. 7d, 36h, 90s; default 7d).")


def _random_point(point: str | None, seed: int | None,
                  older_than: str | None) -> RandomPoint | None:
    from spectral.config.durations import parse_duration
    from spectral.drills.random_point import RandomPoint

    if point is None:
        if seed is not None or older_than is not None:
            raise UsageError(f"{'--seed' if seed is not None else '--older-than'} goes with "
                             f"--point random")
        return None
    if point != "random":
        raise UsageError(f"--point {point!r}: expected random")
    try:
        return RandomPoint(parse_duration(older_than or "7d"), seed)
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None


def _amcheck(value: str | None) -> AmcheckLevel | None:
    from spectral.drills.integrity import AmcheckLevel

    if value is None:
        return None
    try:
        return AmcheckLevel(value.lower())
    except ValueError:
        raise UsageError(f"--amcheck {value!r}: expected basic or thorough") from None


def print_drill(c: Console, r: DrillResult) -> None:
    colour = {"pass": "green", "fail": "red"}.get(r.outcome.value, "yellow")
    c.print(f"[bold]{r.drill_type.value} drill[/] of {r.environment}: "
            f"[bold {colour}]{r.outcome.value.upper()}[/]"
            + (f" with {len(r.warnings)} warning(s)" if r.warnings else ""))
    if r.error:
        c.print(f"  reason: {r.error}")
    if r.backup_id and r.instance is not None:
        c.print(f"  backup {r.backup_id} restored to {r.recovery_target}")
    elif r.backup_id:     # refused (a damaged backup) or failed: no copy was made
        c.print(f"  backup {r.backup_id} not restored (the target: {r.recovery_target})")
    if r.point:
        c.print(f"  point chosen with seed {r.point['seed']} (replay: --point random --seed "
                f"{r.point['seed']} --older-than {r.point['older_than_s']:g}s); "
                f"{r.point['candidates']} candidate(s)"
                + "".join(f", {n} skipped {why}" for why, n in r.point["skipped"].items()))
    from rich.markup import escape
    from rich.table import Table

    from spectral.cli.sections import print_sections
    from spectral.drills.sections import DrillView, is_sectioned, sections

    rest = [check for check in r.checks if not is_sectioned(check.name)]
    table = Table("check", "outcome", "detail")
    for check in rest:
        table.add_row(escape(check.name), check.outcome.value, escape(check.detail))
    if rest:
        c.print(table)
    for check in rest:
        if check.outcome.value != "pass":
            for line in check.evidence[:30]:
                c.print(escape(f"    {check.name}: {line}"))
    print_sections(c, sections(DrillView.of_result(r)))
    if r.rto_seconds is not None:
        split = ", ".join(f"{k} {format_duration(v)}" for k, v in r.timings.items())
        c.print(f"  RTO {format_duration(r.rto_seconds)} (target {format_duration(r.rto_target)})"
                f": {split}")
    if r.timings.get("xmin_held") is not None:
        c.print(f"  the snapshot held the source's xmin horizon back for "
                f"{format_duration(r.timings['xmin_held'])}")
    c.print(f"  RPO {format_duration(r.rpo_seconds)} (target "
            f"{format_duration(r.rpo_target) if r.rpo_target else 're-seedable'}; measured from "
            f"{r.rpo_method or 'nothing: no commit times and no change columns'})")
    if r.kept and r.instance:
        c.print(f"  {r.instance.when_kept()}")


RESTORED_REF = typer.Option(None, "--restored-ref", help="Supabase: the project the operator "
                            "already restored (default: wait for a new project to appear).")
RESTORED_DSN = typer.Option(None, "--restored-dsn", help="Supabase: the restored project's "
                            "connection string or a secret reference (default: read it through "
                            "the Management API's read-only query endpoint).")
BRANCH = typer.Option(False, "--branch", help="Supabase: verify a branch with data instead of "
                      "a restore to a new project (automatic; proves less, see the docs).")
WAIT = typer.Option(7200.0, "--wait", min=1, help="Supabase: seconds to wait for the operator "
                    "and for the restored project to be healthy.")
YES = typer.Option(False, "--yes", "-y", help="Supabase: delete the throwaway project without "
                   "asking.")


def drill(st: AppState, req: DrillRequest, yes: bool = False) -> DrillResult:
    from spectral.cli.backup_cmds import restore_progress
    from spectral.drills.functional import run_functional

    environment = st.environment()
    show = not st.json and sys.stderr.isatty()
    with restore_progress(show) as progress:
        return run_functional(environment, req, operator=CliConfirmer(yes, st.notes),
                              progress=progress,
                              report=lambda m: st.notes.print(f"drill: {m}"))


def write_junit(path: Path | None, result: DrillResult) -> None:
    """--junit: the drill as JUnit XML (written whatever its outcome)."""
    if path is not None:
        from spectral.cli.outfile import writing
        from spectral.drills import junit

        with writing("--junit", path):
            junit.write_junit(path, [junit.drill_suite(result)])


def _copy_request(backup: str | None, restored_ref: str | None, restored_dsn: str | None,
                  branch: bool, wait: float, cfg: Any) -> CopyRequest:
    from spectral.config.secrets import is_secret_ref, resolve_secret
    from spectral.providers.base import CopyMethod, CopyRequest
    from spectral.redact import register_secret

    dsn = restored_dsn
    if dsn is not None:
        dsn = resolve_secret(dsn, base_dir=cfg.base_dir) if is_secret_ref(dsn) else dsn
        register_secret(dsn)
    return CopyRequest(CopyMethod.BRANCH if branch else CopyMethod.RESTORE, backup,
                       restored_ref, dsn, wait)


@drill_app.command("functional")
def functional_cmd(ctx: typer.Context, backup: str | None = BACKUP,
                   target_time: str | None = TARGET_TIME, content: bool = CONTENT,
                   keep: bool = KEEP, restored_ref: str | None = RESTORED_REF,
                   restored_dsn: str | None = RESTORED_DSN, branch: bool = BRANCH,
                   wait: float = WAIT, yes: bool = YES, amcheck: str | None = AMCHECK,
                   point: str | None = POINT, seed: int | None = SEED,
                   older_than: str | None = OLDER_THAN, junit: Path | None = JUNIT) -> None:
    """Restore a backup into a throwaway instance, compare schema fingerprints across the
    protected schemas and the load-bearing tables' row counts with a snapshot, check the core
    contract, measure RTO and RPO, check the copy physically (its recovery log, pg_amcheck, every
    block's checksum), tear down, record it. Exit 0 PASS, 1 FAIL, 3 COULD-NOT-VERIFY.
    With --point random, an old stored snapshot's point from the oldest backup reaching it.
    On Supabase the drill is guided: it says what to click, waits for the restored project,
    verifies it and deletes it after confirmation."""
    from spectral.drills.functional import DrillRequest
    from spectral.drills.result import DrillType
    from spectral.recovery_target import parse_time

    st = state(ctx)
    check_writable("--junit", junit)
    copy = _copy_request(backup, restored_ref, restored_dsn, branch, wait, st.config)
    result = drill(st, DrillRequest(DrillType.FUNCTIONAL,
                                    parse_time(target_time) if target_time else None, content,
                                    keep, copy, _amcheck(amcheck),
                                    _random_point(point, seed, older_than)), yes)
    st.emit(result.to_json(), lambda c: print_drill(c, result))
    alert_drill(st, result.to_json())
    write_junit(junit, result)
    raise typer.Exit(result.outcome.exit_code)


@drill_app.command("post-migration")
def post_migration_cmd(ctx: typer.Context, content: bool = CONTENT, keep: bool = KEEP,
                       amcheck: str | None = AMCHECK, junit: Path | None = JUNIT) -> None:
    """The same drill after a migration (the runbook's post-migration drill)."""
    from spectral.drills.functional import DrillRequest
    from spectral.drills.result import DrillType

    st = state(ctx)
    check_writable("--junit", junit)
    result = drill(st, DrillRequest(DrillType.POST_MIGRATION, None, content, keep,
                                    amcheck=_amcheck(amcheck)))
    st.emit(result.to_json(), lambda c: print_drill(c, result))
    alert_drill(st, result.to_json())
    write_junit(junit, result)
    raise typer.Exit(result.outcome.exit_code)


def _ledger(st: AppState) -> tuple[str, Ledger]:
    environment = st.environment()
    return environment.name, environment.ledger


@log_app.callback()
def log_cmd(ctx: typer.Context,
            kind: list[str] = typer.Option([], "--kind", help="Only entries of this kind "
                                           "(drill, tabletop, incident, activation, snapshot)."),
            since: str | None = typer.Option(None, "--since", help="ISO date or time."),
            until: str | None = typer.Option(None, "--until", help="ISO date or time."),
            limit: int = typer.Option(50, "--limit", min=1, help="At most this many.")) -> None:
    """List ledger entries, newest first."""
    from spectral.ledger import EntryKind

    if ctx.invoked_subcommand is not None:
        return
    st = state(ctx)
    name, ledger = _ledger(st)
    kinds = set()
    for k in kind:
        try:
            kinds.add(EntryKind(k))
        except ValueError:
            raise UsageError(f"--kind {k!r}: expected one of "
                             f"{', '.join(e.value for e in EntryKind)}") from None
    lo = _when(since, "--since")
    hi = _when(until, "--until")
    entries = [e for e in reversed(ledger.entries()) if (not kinds or e.kind in kinds)
               and (lo is None or e.at >= lo) and (hi is None or e.at <= hi)][:limit]

    def human(c: Console) -> None:
        if not entries:
            c.print(f"{name}: no ledger entries")
        for e in entries:
            summary = e.data.get("outcome") or e.data.get("summary") or e.data.get("lsn") or ""
            c.print(f"#{e.seq:<4} {e.at.isoformat(timespec='seconds')}  {e.kind.value:<10} "
                    f"{summary}")

    st.emit([e.to_json() for e in entries], human)


def _when(text: str | None, flag: str) -> datetime | None:
    if text is None:
        return None
    from spectral.recovery_target import parse_time

    try:
        return parse_time(text)
    except UsageError:
        raise UsageError(f"{flag} {text!r}: expected an ISO date or time") from None


@log_app.command("repair")
def log_repair_cmd(ctx: typer.Context,
                   yes: bool = typer.Option(False, "--yes", "-y", help="Remove without asking.")
                   ) -> None:
    """Remove a torn last line of the ledger (a write cut short), after confirmation, and record
    the repair as an entry. An edited, removed or reordered entry is never repaired."""
    st = state(ctx)
    name, ledger = _ledger(st)
    entry = ledger.repair(CliConfirmer(yes, st.err), name)
    st.emit(entry.to_json(), lambda c: c.print(f"{name}: {entry.data['summary']}; recorded as "
                                               f"entry {entry.seq}"))


@log_app.command("verify")
def log_verify_cmd(ctx: typer.Context) -> None:
    """Check the ledger's hash chain and, with public_keys configured, its signatures: any
    edited, removed, reordered or unsigned entry is reported (exit 1). A ledger whose newest
    entry is older than the cadence allows looks cut short (exit 3)."""
    from spectral.drills.cadence import looks_cut_short

    st = state(ctx)
    name, ledger = _ledger(st)
    problems = ledger.verify()
    entries = ledger.entries()
    cut = looks_cut_short(entries, datetime.now(UTC))
    signed = (f"signatures checked against {len(ledger.trusted)} trusted key(s)"
              if ledger.trusted else "signatures not checked (no public_keys configured)")
    data = {"environment": name, "ok": not problems and cut is None, "store": ledger.describe(),
            "signatures_checked": bool(ledger.trusted), "cut_short": cut,
            "problems": [{"line": p.line, "problem": p.problem} for p in problems]}

    def human(c: Console) -> None:
        if not problems and cut is None:
            c.print(f"{name}: ledger intact ({len(entries)} entries, head "
                    f"{ledger.head_hash()[:16]}; {ledger.describe()}; {signed})")
        for p in problems:
            c.print(f"line {p.line}: {p.problem}" if p.line else p.problem)

    st.emit(data, human)
    if cut is not None:
        st.err.print(f"{name}: {cut}")
    raise typer.Exit(ExitCode.CHECK_FAILED if problems else
                     ExitCode.COULD_NOT_VERIFY if cut is not None else ExitCode.OK)
