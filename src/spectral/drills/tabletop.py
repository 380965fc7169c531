"""The monthly tabletop review: a guided walk through one playbook scenario, with participants,
notes per step, findings and action items recorded in the ledger. Answers come from a person at
a terminal or from an answers file (TOML or JSON), which is how tests and rehearsals run it."""

from __future__ import annotations

import json
import random
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spectral.config.models import Posture
from spectral.errors import UsageError
from spectral.ledger import Entry, EntryKind, Ledger
from spectral.playbooks.catalog import Playbook, playbook, playbooks
from spectral.runbook.model import Runbook


class StepAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", description="What the group said about this step.")


class Answers(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scenario: str | None = Field(default=None, description="Playbook name; default: chosen.")
    participants: list[str] = Field(min_length=1, description="Who took part.")
    steps: list[StepAnswer] = Field(default_factory=list, description="Notes, step by step.")
    findings: list[str] = Field(default_factory=list, description="What the review found.")
    action_items: list[str] = Field(default_factory=list, description="What will be done.")


def load_answers(path: Path) -> Answers:
    try:
        raw = path.read_text()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the answers file: {exc.strerror}") from None
    try:
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw)
        return Answers.model_validate(data)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: not a valid answers file: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise UsageError(f"{path}: {key}: {err['msg']}") from None


def choose(name: str | None, book: Runbook, rng: random.Random | None = None) -> Playbook:
    """The named playbook in the team's words (its runbook file), or one at random."""
    if name:
        return playbook(name, book)
    return (rng or random.Random()).choice(playbooks(book))


@dataclass
class Tabletop:
    scenario: Playbook
    posture: Posture
    participants: list[str]
    notes: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    action_items: list[str] = field(default_factory=list)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        steps = self.scenario.steps(self.posture)
        return {"scenario": self.scenario.name, "title": self.scenario.title,
                "posture": self.posture.value, "participants": self.participants,
                "steps": [{"step": s.text, "automated": s.automated,
                           "note": self.notes[i] if i < len(self.notes) else ""}
                          for i, s in enumerate(steps)],
                "findings": self.findings, "action_items": self.action_items,
                "started_at": self.started_at.isoformat(timespec="seconds"),
                "ended_at": datetime.now(UTC).isoformat(timespec="seconds")}


Show = Callable[[int, int, str, bool], None]


def from_answers(answers: Answers, posture: Posture, scenario: str | None, book: Runbook,
                 show: Show | None = None) -> Tabletop:
    chosen = choose(scenario or answers.scenario, book)
    steps = chosen.steps(posture)
    if len(answers.steps) > len(steps):
        raise UsageError(f"the answers have {len(answers.steps)} steps; {chosen.name} has "
                         f"{len(steps)} at tier {posture.value}")
    for i, step in enumerate(steps):
        if show:
            show(i + 1, len(steps), step.text, step.automated)
    return Tabletop(chosen, posture, answers.participants,
                    [a.note for a in answers.steps], answers.findings, answers.action_items)


@dataclass(frozen=True)
class TabletopEntry:
    """A review as the ledger keeps it (ledger/payloads.py `TabletopRecord` reads it back)."""

    KIND: ClassVar[EntryKind] = EntryKind.TABLETOP
    tabletop: Tabletop
    briefing: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.tabletop.to_json(),
                **({"briefing": self.briefing} if self.briefing else {})}


def record(ledger: Ledger, environment: str, tabletop: Tabletop,
           briefing: dict[str, Any] | None = None) -> Entry:
    """The review in the ledger, with the facts it was briefed with (the portability report
    for provider-failure)."""
    return ledger.record(environment, TabletopEntry(tabletop, briefing))
