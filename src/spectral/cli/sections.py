"""The text report's sections of a drill (drills/sections.py): physical integrity, collations,
what recovery logged, row-count drift, the recovery point a --point random drill chose."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.markup import escape
from rich.table import Table

from spectral.drills.sections import EVIDENCE_SHOWN, LABELS, NOT_RUN, Section

if TYPE_CHECKING:
    from rich.console import Console

COLOURS = {"pass": "green", "fail": "red", "warn": "yellow", "could_not_verify": "yellow"}


def _state(state: str) -> str:
    colour = COLOURS.get(state, "dim")
    return f"[{colour}]{LABELS[state]}[/]"


def print_section(c: Console, section: Section) -> None:
    """Its heading and summary; a table when its rows have several columns (drift), else a
    line per row with its evidence under it."""
    c.print(f"[bold]{escape(section.title)}[/]: {_state(section.state)} - "
            f"{escape(section.summary)}")
    if len(section.columns) > 2 and section.rows:
        table = Table(*section.columns, "outcome", box=box.SIMPLE, padding=(0, 1))
        for row in section.rows:
            table.add_row(*(escape(cell) for cell in row.cells), _state(row.state or NOT_RUN))
        c.print(table)
        return
    for row in section.rows:
        name, *rest = row.cells
        state = f"{_state(row.state)} - " if row.state else ""
        c.print(f"  {escape(name)}: {state}{escape(' '.join(rest))}")
        for line in row.lines[:EVIDENCE_SHOWN]:
            c.print(f"      {escape(line)}")


def print_sections(c: Console, sections: list[Section]) -> None:
    for section in sections:
        print_section(c, section)
