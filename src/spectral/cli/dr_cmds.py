"""`spectral dr ...`: disaster-recovery operations. This part: fingerprints, compare, snapshots."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from spectral.cli import (
    backup_cmds,
    drift_cmds,
    drill_cmds,
    evidence_cmds,
    exit_cmds,
    fleet_cmds,
    incident_cmds,
    playbook_cmds,
    posture_cmds,
    review_cmds,
)
from spectral.cli.state import AppState, state
from spectral.errors import ExitCode

if TYPE_CHECKING:
    from rich.console import Console

    from spectral.verify.compare import Comparison
    from spectral.verify.document import Fingerprint

if TYPE_CHECKING:
    from spectral.environment import Environment

app = typer.Typer(no_args_is_help=True, help="Disaster recovery: backups, point-in-time "
                                             "restore, fingerprints, comparisons and snapshots.")

SCHEMAS = typer.Option(None, "--schemas", help="Comma-separated schemas (default: the "
                                                "environment's protected schemas).")
CONTENT = typer.Option(False, "--content", help="Also checksum every row of every table "
                                               "(computed inside PostgreSQL).")
backup_cmds.register(app)
app.add_typer(drill_cmds.drill_app, name="drill")
app.add_typer(drill_cmds.log_app, name="log")
app.add_typer(drift_cmds.app, name="drift")
review_cmds.register(app, drill_cmds.drill_app)
posture_cmds.register(app)
incident_cmds.register(app)
exit_cmds.register(app)
evidence_cmds.register(app, drill_cmds.log_app)
app.add_typer(playbook_cmds.app, name="playbook")
app.add_typer(fleet_cmds.alerts_app, name="alerts")

WORKERS = typer.Option(None, "--workers", min=1, help="Parallel sessions (default: cores).")


def _split(schemas: str | None) -> list[str] | None:
    return [s.strip() for s in schemas.split(",") if s.strip()] if schemas else None


def _summary(doc: Fingerprint) -> dict[str, Any]:
    return {"taken_at": doc.taken_at, "source": doc.source.to_json(), "content": doc.content,
            "schemas": {k: v.checksum for k, v in doc.schemas.items()},
            "managed": {k: v.checksum for k, v in doc.managed.items()},
            "tables": {k: t.to_json() for k, t in doc.tables.items()}}


def _print_fingerprint(c: Console, doc: Fingerprint, out: Path | None) -> None:
    src = doc.source
    c.print(f"fingerprint of {src.database} (PostgreSQL {src.server_version}) at "
            f"{doc.taken_at}, LSN {src.lsn}" + (f" -> {out}" if out else ""))
    for name, entry in doc.schemas.items():
        shown = "missing" if entry.missing else str(entry.checksum)[:16]
        c.print(f"  schema {name:<10} {shown}  ({len(entry.objects)} objects)")
    from rich.table import Table

    table = Table("table", "rows", "content", "last change", "status")
    for name, t in doc.tables.items():
        table.add_row(name, "-" if t.rows is None else f"{t.rows:,}",
                      t.content or "-", t.last_change or "-",
                      t.status.value if t.ok else f"{t.status.value}: {t.reason}")
    c.print(table)


def _show(st: AppState) -> bool:
    """Progress bars only for a person watching a terminal (never with --json)."""
    return not st.json and sys.stderr.isatty()


def _snapshot_dsn(st: AppState, environment: Environment, primary: str) -> str:
    """Where a snapshot of the live database is read: the environment's replica
    (snapshot_dsn, checked to be one of this database, its lag told) or the primary."""
    from spectral.verify.replica import replica_for

    replica = replica_for(environment.config, primary, environment.spectral.base_dir)
    if replica is None:
        return primary
    st.err.print(replica.describe())
    return replica.dsn


@app.command("fingerprint")
def fingerprint_cmd(ctx: typer.Context, schemas: str | None = SCHEMAS, content: bool = CONTENT,
                    out: Path | None = typer.Option(None, "--out", help="Write the full "
                                                    "fingerprint document to FILE."),
                    workers: int | None = WORKERS) -> None:
    """Fingerprint a database: per-schema checksums of every object from the system catalogs,
    exact row counts, and with --content an order-independent checksum of every table."""
    from spectral.cli.backup_cmds import restore_progress
    from spectral.verify.fingerprint import options_for, save, take

    st = state(ctx)
    environment = st.environment()
    with environment.database() as dsn, restore_progress(_show(st)) as progress:
        names = _split(schemas)
        doc = take(_snapshot_dsn(st, environment, dsn),
                   options_for(environment.config, content=content, workers=workers,
                               schemas=tuple(names) if names else None,
                               require=True, progress=progress, live=True))
    if out:
        save(doc, out)
    st.emit(_summary(doc), lambda c: _print_fingerprint(c, doc, out))


def _print_comparison(c: Console, cmp: Comparison, labels: tuple[str, str]) -> None:
    from spectral.verify.compare import Outcome

    c.print(f"compare {labels[0]}  ->  {labels[1]}: [bold]{cmp.outcome.value}[/]")
    for s in cmp.schemas:
        c.print(f"  schema {s.name}: {s.outcome.value}")
        for d in s.differences:
            c.print(f"    - {d}")
    if cmp.database.outcome is not Outcome.MATCH:
        c.print(f"  event triggers: {cmp.database.outcome.value}")
        for d in cmp.database.differences:
            c.print(f"    - {d}")
    for s in cmp.drift:
        if s.outcome is not Outcome.MATCH:
            tag = "" if cmp.include_managed else " (managed schema: drift, not a failure)"
            c.print(f"  drift in {s.name}{tag}:")
            for d in s.differences[:20]:
                c.print(f"    - {d}")
    bad = [t for t in cmp.tables if t.outcome is not Outcome.MATCH]
    c.print(f"  tables: {len(cmp.tables) - len(bad)} of {len(cmp.tables)} match")
    for t in bad:
        c.print(f"    - {t.name}: {t.outcome.value}: {t.detail}")


def _exit_code(cmp: Comparison) -> ExitCode:
    from spectral.verify.compare import Outcome

    return {Outcome.MATCH: ExitCode.OK, Outcome.MISMATCH: ExitCode.CHECK_FAILED,
            Outcome.COULD_NOT_VERIFY: ExitCode.COULD_NOT_VERIFY}[cmp.outcome]


@app.command("compare")
def compare_cmd(ctx: typer.Context,
                a: str = typer.Argument(..., help="Fingerprint file, environment name or DSN."),
                b: str = typer.Argument(..., help="Fingerprint file, environment name or DSN."),
                schemas: str | None = SCHEMAS, content: bool = CONTENT,
                include_managed: bool = typer.Option(False, "--include-managed",
                                                     help="Fail on drift in managed schemas "
                                                          "(auth, storage, extensions, ...)."),
                workers: int | None = WORKERS) -> None:
    """Compare two databases or fingerprints: schema objects, row counts and (with --content or
    when both fingerprints carry it) content. Exit 1 on any mismatch, 3 if a table could not be
    verified."""
    from spectral.cli.backup_cmds import restore_progress
    from spectral.verify.compare import compare
    from spectral.verify.targets import fingerprint_pair

    st = state(ctx)
    names = _split(schemas)
    with restore_progress(_show(st)) as progress:
        (doc_a, label_a), (doc_b, label_b) = fingerprint_pair(
            lambda: st.config, a, b, schemas=names, content=content, workers=workers,
            progress=progress)
    cmp = compare(doc_a, doc_b, include_managed=include_managed)
    st.emit({"a": label_a, "b": label_b, **cmp.to_json()},
            lambda c: _print_comparison(c, cmp, (label_a, label_b)))
    raise typer.Exit(_exit_code(cmp))


@app.command("snapshot")
def snapshot_cmd(ctx: typer.Context, content: bool = CONTENT,
                 workers: int | None = WORKERS) -> None:
    """Fingerprint the environment and keep it in its evidence store with its time and LSN, for
    drills that restore to that point later."""
    from spectral.cli.backup_cmds import restore_progress
    from spectral.verify import pinning, snapshots
    from spectral.verify.fingerprint import options_for, take

    st = state(ctx)
    environment = st.environment()
    name = environment.name
    archive = environment.provider.wal_archive()   # a drill restores to its LSN: checked
    pin = None if archive is None else pinning.against(archive.flush, archive.commits_near)
    with environment.database() as dsn, restore_progress(_show(st)) as progress:
        doc = take(_snapshot_dsn(st, environment, dsn),
                   options_for(environment.config, content=content, workers=workers,
                               progress=progress, live=True, pin=pin))
        path = snapshots.record(environment.ledger, name, doc)
    st.emit({"environment": name, "path": str(path), "taken_at": doc.taken_at,
             "lsn": doc.source.lsn},
            lambda c: c.print(f"{name}: snapshot at {doc.taken_at} "
                              f"(LSN {doc.source.lsn}) -> {path}"))


@app.command("snapshots")
def snapshots_cmd(ctx: typer.Context) -> None:
    """List the snapshots in the environment's evidence store."""
    from spectral.ledger.open import open_ledger
    from spectral.verify import snapshots

    st = state(ctx)
    name, _env = st.config.environment(st.env)
    ledger = open_ledger(st.config, name)
    ledger.sync()
    refs = snapshots.listing(ledger.dir)
    data = [{"taken_at": r.taken_at.isoformat(), "lsn": r.lsn, "path": str(r.path)} for r in refs]

    def human(c: Console) -> None:
        if not refs:
            c.print(f"{name}: no snapshots yet (spectral dr snapshot)")
        for r in refs:
            c.print(f"{r.taken_at.isoformat(timespec='seconds')}  LSN {r.lsn:<14} {r.path.name}")

    st.emit(data, human)
