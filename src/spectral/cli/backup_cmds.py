"""`spectral dr backup | backups | restore | instances | teardown | promote | expire | wal`.

Each command asks the environment's provider for the capability object it needs (capabilities.py)
and, when the provider hands out None, says in one line what the provider offers instead."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import typer

from spectral.cli.state import AppState, state
from spectral.config.durations import format_duration
from spectral.errors import SpectralError, UsageError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

    from spectral.providers.base import InPlaceResult, Instance, Provider
    from spectral.providers.base import Progress as RestoreProgress
    from spectral.providers.capabilities import Options, RestoredInstances
    from spectral.recovery_target import RecoveryTarget

T = TypeVar("T")


def needed(provider: Provider, found: T | None, what: str, capability: str) -> T:
    """The capability object `found`, or the one-line refusal of `what` without it."""
    if found is None:
        from spectral.providers.capabilities import missing

        raise missing(provider, what, capability)
    return found


def backup_options(provider: Provider, given: Options, *, restore: bool = False) -> Options:
    """The flags the provider's own options were given, checked by the provider before
    anything runs."""
    if not given:
        return {}
    declared = needed(provider, provider.backup_options(), "--" + next(iter(given)).replace(
        "_", "-"), "backup_options")
    return declared.parse(given, restore=restore)


def register(app: typer.Typer) -> None:
    app.command("backup")(backup_cmd)
    app.command("backups")(backups_cmd)
    app.command("restore")(restore_cmd)
    app.command("instances")(instances_cmd)
    app.command("teardown")(teardown_cmd)
    app.command("promote")(promote_cmd)
    app.command("expire")(expire_cmd)
    from spectral.cli.wal_cmds import wal_app

    app.add_typer(wal_app, name="wal")


INCREMENTAL = typer.Option(False, "--incremental", help="Only what changed since the newest "
                                                       "backup (the same as --type incr).")
ALL = typer.Option(False, "--all", help="Every restored instance.")
OPTION = typer.Option([], "--option", "-o", help="KEY=VALUE: an option the environment's "
                      "provider declares (repeatable; e.g. pgbackrest: -o process_max=4).")


def given_options(pairs: list[str], **flags: object) -> dict[str, object]:
    """The flags given and the --option KEY=VALUE pairs, by name, for the provider to check
    (values stay text: the provider parses its own)."""
    out = {k: v for k, v in flags.items() if v is not None}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise UsageError(f"--option {pair!r}: expected KEY=VALUE")
        if key in out:
            raise UsageError(f"--option {key}: given twice")
        out[key] = value
    return out


def backup_cmd(ctx: typer.Context, incremental: bool = INCREMENTAL,
               backup_type: str = typer.Option("full", "--type", help="full, diff or incr "
                                               "(local: full or incr, PostgreSQL 17+; "
                                               "pgbackrest: all three)."),
               repo: int | None = typer.Option(None, "--repo", min=1, help="pgbackrest: the "
                                               "repository to back up into (default 1)."),
               process_max: int | None = typer.Option(None, "--process-max", min=1, max=64,
                                                      help="pgbackrest: processes for this "
                                                           "backup."),
               option: list[str] = OPTION) -> None:
    """Take a base backup (local: pg_basebackup into the environment's repository, verified
    with pg_verifybackup; pgbackrest: pgbackrest backup, then pgbackrest verify) and record
    it."""
    st = state(ctx)
    kind = "incr" if incremental else backup_type
    given = given_options(option, type=None if kind == "full" else kind, repo=repo,
                          process_max=process_max)
    p = st.environment().provider
    b = p.backup(backup_options(p, given))
    st.emit(b.to_json(), lambda c: c.print(
        f"backup {b.id} ({b.kind.value}{', on ' + b.parent if b.parent else ''}): "
        f"{b.size_bytes / 1e6:.1f} MB in {format_duration(b.duration_s)}, LSN {b.start_lsn} -> "
        f"{b.stop_lsn}, {b.verification.value}"))


def backups_cmd(ctx: typer.Context) -> None:
    """List the backups and the recoverable window (earliest and latest recoverable time and
    LSN), and name any gap in the WAL archive."""
    st = state(ctx)
    p = st.environment().provider
    backups, window, pitr = p.backups(), p.window(), p.pitr_enabled()
    from spectral.providers.base import Capability

    live = p.live_lineage()

    def human(c: Console) -> None:
        from rich.table import Table

        table = Table("backup", "kind", "parent", "stop LSN", "stopped at", "size", "check")
        for b in backups:
            table.add_row(b.id, b.kind.value, b.parent or "-", b.stop_lsn,
                          b.stop_time.isoformat(timespec="seconds"), f"{b.size_bytes / 1e6:.1f} MB",
                          b.verification.value + ("" if b.status == "completed" else
                                                  f", {b.status}") + (
                              "" if live is None or b.id in live else
                              f"; timeline {b.timeline} abandoned"))
        c.print(table if backups else "no backups yet" + (
            " (spectral dr backup)" if Capability.ON_DEMAND_BACKUP in p.capabilities else
            f": {p.describe()} holds none"))
        c.print(f"PITR {'enabled' if pitr else 'not enabled'}; recoverable window: "
                f"{window.describe()}")
        for g in window.gaps:
            c.print(f"[bold red]gap[/] in the WAL archive after {g.after_segment}: "
                    f"{g.missing_from} .. {g.missing_to} missing (timeline {g.timeline})"
                    if g.from_lsn is None else f"[bold red]gap[/] in the WAL archive: "
                    f"segment {g.missing_from} {g.problem}")

    st.emit({"backups": [{**b.to_json(), "on_live_timeline": live is None or b.id in live}
                         for b in backups], "window": window.to_json(), "pitr_enabled": pitr},
            human)


def _target(latest: bool, time: str | None, xid: str | None, lsn: str | None,
            name: str | None, exclusive: bool) -> RecoveryTarget:
    from spectral.recovery_target import from_flags

    return from_flags(latest, time, xid, lsn, name, exclusive)


@contextmanager
def restore_progress(enabled: bool) -> Iterator[RestoreProgress | None]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    cols = (TextColumn("[bold]{task.description:<8}"), BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"), TimeRemainingColumn())
    with Progress(*cols, console=Console(stderr=True), transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def restore_cmd(
    ctx: typer.Context,
    latest: bool = typer.Option(False, "--latest", help="Everything the archive holds."),
    target_time: str | None = typer.Option(None, "--target-time", help="ISO 8601 time."),
    target_xid: str | None = typer.Option(None, "--target-xid", help="A transaction id."),
    exclusive: bool = typer.Option(False, "--exclusive", help="Stop just before the target "
                                                              "instead of just after it."),
    target_lsn: str | None = typer.Option(None, "--target-lsn", help="A WAL location."),
    target_name: str | None = typer.Option(None, "--target-name", help="A restore point "
                                           "(pg_create_restore_point)."),
    pause: bool = typer.Option(False, "--pause", help="Stop at the target for inspection "
                               "before promotion (spectral dr promote); needs a target, not "
                               "--latest, and a new instance."),
    in_place: bool = typer.Option(False, "--in-place", help="Replace the environment's "
                                  "database (needs --yes; the old data is kept aside)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Confirm an in-place restore, an undo "
                                                        "or a discard."),
    discard_previous: bool = typer.Option(False, "--discard-previous", help="Delete the data "
                                          "directories kept aside by in-place restores."),
    undo: bool = typer.Option(False, "--undo", help="Undo the last in-place restore: put the "
                                                    "kept-aside data directory back."),
    process_max: int | None = typer.Option(None, "--process-max", min=1, max=64,
                                           help="pgbackrest: processes for this restore."),
    option: list[str] = OPTION,
    backup: str | None = typer.Option(None, "--backup", help="Restore from this backup id "
                                      "(default: the newest backup that reaches the target; "
                                      "an older one when the newest is damaged). Not with "
                                      "--in-place."),
) -> None:
    """Restore to a point in time: into a new throwaway instance (default; prints its DSN) or
    in place. Picks the newest backup before the target, applies incrementals, replays WAL and
    checks that recovery reached the target."""
    st = state(ctx)
    if discard_previous or undo:
        _undo_or_discard(st, undo, yes)
        return
    target = _target(latest, target_time, target_xid, target_lsn, target_name, exclusive)
    if pause:
        check_pause(target, in_place)
    if backup is not None and in_place:
        raise UsageError("--backup is for a restore into a new instance, not --in-place")
    p = st.environment().provider
    options = backup_options(p, given_options(option, process_max=process_max), restore=True)
    show = not st.json and sys.stderr.isatty()
    if in_place:
        in_place_undo = needed(p, p.in_place_undo(), "spectral dr restore --in-place",
                               "in_place_undo")
        st.environment().ledger.check_appendable()   # a rewind is always on record
        with restore_progress(show) as progress:
            done = in_place_undo.restore(target, confirmed=yes, progress=progress,
                                         options=options)
        record_owed(st, "the in-place restore")
        st.emit(done.to_json(), lambda c: _print_in_place(c, done))
        return
    instances = needed(p, p.restored_instances(), "spectral dr restore", "restored_instances")
    _tidy(st, instances)
    with restore_progress(show) as progress:
        inst = instances.restore(target, pause=pause, progress=progress, options=options,
                                 backup_id=backup)
    st.emit(inst.to_json(), lambda c: _print_instance(c, target, inst))


def _tidy(st: AppState, instances: RestoredInstances) -> None:
    """A restore killed mid-way (kill -9) left its instance's server running: removed."""
    for orphan in instances.orphans():
        st.err.print(f"removing orphaned instance {orphan} left by an earlier run")
        instances.teardown(orphan)


def record_owed(st: AppState, what: str) -> None:
    """The entry the operation owes the ledger, appended now; if the ledger cannot take it
    (damaged meanwhile), the operation is still done and says so: the entry waits, owed,
    until the ledger is repaired."""
    try:
        st.environment().record_owed()
    except SpectralError as exc:
        st.err.print(f"spectral: {what} is done but not recorded yet: {exc.message}"
                     + (f" ({exc.hint})" if exc.hint else ""))


def _print_in_place(c: Console, done: InPlaceResult) -> None:
    reached = done.reached
    c.print(f"{done.environment}: restored in place to {done.target} from backup "
            f"{done.backup}; the previous data is kept at {done.previous} "
            f"(spectral dr restore --undo | --discard-previous)"
            + "".join(f"\n  discarded the older kept-aside {d}" for d in done.discarded)
            + "".join(f"\n  prepared transaction {g!r} is pending again and holds its locks "
                      f"(it was committed or rolled back after the target): COMMIT PREPARED "
                      f"or ROLLBACK PREPARED it"
                      for g in (reached.prepared or () if reached else ())))


def _print_instance(c: Console, target: RecoveryTarget, inst: Instance) -> None:
    c.print(f"restored {target.describe()} from backup {inst.backup_id} into instance "
            f"{inst.id} (port {inst.port})")
    reached = inst.reached
    if reached and reached.stopped:
        c.print(f"recovery stopped {reached.stopped}")
    c.print(f"dsn: {inst.dsn}")
    c.print(f"tear it down with: spectral dr teardown {inst.id}")


def check_pause(target: RecoveryTarget, in_place: bool) -> None:
    """--pause holds recovery at its target for inspection: with no target PostgreSQL replays
    everything and promotes, so there is nothing to pause at; an in-place restore promotes."""
    from spectral.recovery_target import TargetKind

    if in_place:
        raise UsageError("--pause goes with a restore into a new instance, not --in-place")
    if target.kind is TargetKind.LATEST:
        raise UsageError("--pause needs a recovery target to stop at (--target-time, "
                         "--target-xid, --target-lsn or --target-name); --latest promotes at "
                         "the end of the WAL")


def _undo_or_discard(st: AppState, undo: bool, yes: bool) -> None:
    from spectral.cli.state import CliConfirmer

    p = st.environment().provider
    in_place = needed(p, p.in_place_undo(), "spectral dr restore --undo | --discard-previous",
                      "in_place_undo")
    confirmer = CliConfirmer(yes, st.err)
    if not undo:
        gone = in_place.discard(confirmer)
        st.emit({"discarded": gone}, lambda c: c.print(
            f"discarded {len(gone)} kept-aside data director{'y' if len(gone) == 1 else 'ies'}"
            + "".join(f"\n  {d}" for d in gone)))
        return
    st.environment().ledger.check_appendable()
    done = in_place.undo(confirmer)
    record_owed(st, "the undo")
    st.emit(done.to_json(), lambda c: c.print(
        f"{done.environment}: put back {done.restored}; the restore is kept aside at "
        f"{done.set_aside}. The database is now on timeline {done.timeline}, which "
        f"later restores follow."))


def instances_cmd(ctx: typer.Context) -> None:
    """List the throwaway instances that restores made and whether they still run."""
    st = state(ctx)
    p = _instances(st, "spectral dr instances")
    rows = [{**i.to_json(), "running": p.is_running(i)} for i in p.listed()]

    def human(c: Console) -> None:
        if not rows:
            c.print("no restored instances")
        for r in rows:
            c.print(f"{r['id']}  {'running' if r['running'] else 'stopped'}  {r['state']}  "
                    f"port {r['port'] or '-'}  {r['target']}  from {r['backup_id']}"
                    + (f"  (left by a run that was killed: spectral dr teardown {r['id']})"
                       if r["state"] == "orphaned" else ""))

    st.emit(rows, human)


def teardown_cmd(ctx: typer.Context,
                 instance_id: str | None = typer.Argument(None, help="Instance id."),
                 all_: bool = ALL) -> None:
    """Stop a restored instance and delete its files."""
    st = state(ctx)
    p = _instances(st, "spectral dr teardown")
    if bool(instance_id) == all_:
        raise UsageError("give an instance id or --all")
    ids = [i.id for i in p.listed()] + p.orphans() if all_ else [str(instance_id)]
    gone = [i for i in dict.fromkeys(ids) if p.teardown(i)]
    if instance_id and not gone:
        raise UsageError(f"no restored instance {instance_id!r} (spectral dr instances)")
    st.emit({"removed": gone}, lambda c: c.print(f"removed {len(gone)} instance(s)"
                                                 + (": " + ", ".join(gone) if gone else "")))


def promote_cmd(ctx: typer.Context,
                instance_id: str = typer.Argument(..., help="A paused instance's id.")) -> None:
    """Promote an instance restored with --pause once it has been inspected."""
    st = state(ctx)
    _instances(st, "spectral dr promote").promote(instance_id)
    st.emit({"promoted": instance_id}, lambda c: c.print(f"{instance_id}: promoted"))


def expire_cmd(ctx: typer.Context,
               keep: int = typer.Option(..., "--keep", min=1, help="Full backups to keep."),
               window: float | None = typer.Option(None, "--window", min=0, help="Also keep "
                                                   "whatever reaches any point in the last "
                                                   "DAYS days."),
               dry_run: bool = typer.Option(False, "--dry-run", help="Show what would go."),
               yes: bool = typer.Option(False, "--yes", "-y", help="Delete without asking.")
               ) -> None:
    """Retention: remove backups beyond the newest --keep full backups (and the --window), and
    the WAL only they needed. Never removes anything a kept backup or the window needs."""
    from spectral.cli.state import CliConfirmer

    st = state(ctx)
    p = st.environment().provider
    plan = needed(p, p.retention(), "spectral dr expire", "retention").expire(
        keep, window, CliConfirmer(yes, st.err), dry_run=dry_run)
    data = {"keep": plan.keep, "remove": plan.remove, "wal_remove": len(plan.wal_remove),
            "dry_run": dry_run, "unlisted_removed": plan.swept}
    verb = "would remove" if dry_run else "removed"
    swept = (f"; removed {len(plan.swept)} backup director(ies) the catalog no longer listed "
             f"(left by a run that was killed): {', '.join(plan.swept)}" if plan.swept else "")
    st.emit(data, lambda c: c.print(f"{verb} {len(plan.remove)} backup(s) {plan.remove} and "
                                    f"{len(plan.wal_remove)} WAL segment(s); kept {plan.keep}"
                                    + swept))


def _instances(st: AppState, what: str) -> RestoredInstances:
    p = st.environment().provider
    return needed(p, p.restored_instances(), what, "restored_instances")
