"""Progress display for long steps, on stderr so --json output stays clean."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from spectral.refdb.seed import TABLES, Counts
from spectral.refdb.seed import Progress as SeedProgress


@contextmanager
def seed_progress(scale: int, enabled: bool = True) -> Iterator[SeedProgress | None]:
    """A bar over all rows of the seed, showing the table being loaded and bytes per second."""
    if not enabled:
        yield None
        return
    counts = Counts(scale)
    total = sum(spec.count(counts) for spec in TABLES)
    columns = (TextColumn("[bold]seed[/] {task.fields[table]:<22}"), BarColumn(),
               TextColumn("{task.completed:>10,.0f}/{task.total:,.0f} rows"),
               DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        rows_task: TaskID = bar.add_task("seed", total=total, table="")
        sent = 0

        def update(table: str, rows: int, _table_total: int, nbytes: int) -> None:
            nonlocal sent
            sent += nbytes
            bar.update(rows_task, advance=rows, table=table)

        yield update
