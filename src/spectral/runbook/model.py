"""The runbook file a team keeps beside its configuration (`runbook = "runbook.toml"`, or a
runbook.toml next to the configuration file): its posture texts, each playbook's manual steps
and the names of its own tools, in its own words. Without a file every text is the neutral
one below. A text names a tool or a live figure as `{name}`; which names it may use is checked
when the file is read (load.py), and `fill` puts the values in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# The live figures a text of the rendered page may name (render.py fills them).
FIGURES: tuple[str, ...] = ("environment", "posture", "provider", "rpo_target", "rto_target",
                            "measured_rpo", "measured_rto", "last_drill")

# The tools and documents spectral's own texts name; a team's file gives its names for them
# (and may add its own, for its own texts).
NEUTRAL_TOOLS: dict[str, str] = {
    "team": "the team",
    "application": "the application",
    "connection_settings": "the application's connection settings",
    "seed": "the team's seed data",
    "provision": "the team's provisioning step",
    "credential_rotation": "the team's credential rotation procedure",
    "incident_log": "the team's incident log",
}


class PostureTexts(BaseModel):
    """What each posture tier means for this team ([posture])."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: str = Field(
        default="Nothing in {environment} is irreplaceable yet: its data can be generated "
                "again from {seed}, so a loss is answered by re-seeding, not by a restore.",
        description="The alpha tier (re-seed).")
    pro: str = Field(
        default="{provider} keeps a backup every day; a loss costs at most the writes since "
                "the newest one (RPO target {rpo_target}).",
        description="The pro tier (daily backups).")
    pitr: str = Field(
        default="Backups and the archived WAL: the database can be brought back to any "
                "moment of its recoverable window (RPO target {rpo_target}).",
        description="The pitr tier (point-in-time recovery).")


class PlaybookTexts(BaseModel):
    """One playbook in the team's words ([playbooks.<name>])."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str | None = Field(default=None, description="The playbook's title; default: "
                                                        "spectral's.")
    manual: dict[str, str] = Field(
        default={}, description="A manual step's key -> the team's text for it "
                                "(`spectral dr playbook show NAME --json` lists the keys).")
    then: list[str] = Field(default=[], description="The team's own manual steps, after "
                                                    "spectral's, at every tier.")


class Runbook(BaseModel):
    """The runbook file (runbook.toml). Every text may name the tools ({seed}, ...); the page
    texts (intro, posture, activation, cadence, checklist) also the live figures."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = Field(default=1, description="The file's format version.")
    title: str = Field(default="Disaster recovery runbook", description="The page's title.")
    intro: str = Field(default="", description="A paragraph under the title.")
    tools: dict[str, str] = Field(
        default={}, description="The team's names for its tools and documents, by key "
                                f"({', '.join(NEUTRAL_TOOLS)}, or its own).")
    posture: PostureTexts = Field(default_factory=PostureTexts,
                                  description="Each posture tier in the team's words.")
    activation: str = Field(
        default="The tier goes up as soon as one of the activation triggers fires; "
                "`spectral dr triggers` evaluates each with its evidence.",
        description="When and how the team raises its posture tier.")
    cadence: str = Field(default="", description="A paragraph on the team's drill cadence.")
    checklist: str = Field(default="", description="A paragraph on the first-partner "
                                                   "checklist.")
    playbooks: dict[str, PlaybookTexts] = Field(default={}, description="Playbooks in the "
                                                "team's words, by name.")
    related: list[str] = Field(default=[], description="The team's related documents.")
    source: Path | None = Field(default=None, exclude=True, description="The file read.")

    @field_validator("tools")
    @classmethod
    def _tool_names(cls, value: dict[str, str]) -> dict[str, str]:
        bad = [k for k in value if not NAME.match(k) or k in FIGURES]
        if bad:
            raise ValueError(f"tool names are lower-case words, not a live figure "
                             f"({', '.join(FIGURES)}); got {', '.join(map(repr, bad))}")
        return value

    def tool_names(self) -> dict[str, str]:
        return {**NEUTRAL_TOOLS, **self.tools}

    def page_texts(self) -> dict[str, str]:
        """The page's texts by key, as written in the file."""
        return {"title": self.title, "intro": self.intro, "activation": self.activation,
                "cadence": self.cadence, "checklist": self.checklist,
                **{f"posture.{t}": getattr(self.posture, t) for t in ("alpha", "pro", "pitr")},
                **{f"related[{i}]": r for i, r in enumerate(self.related)}}

    def step_texts(self) -> dict[str, str]:
        """The playbooks' texts by key, as written in the file (tools only, no figures)."""
        out: dict[str, str] = {}
        for name, p in self.playbooks.items():
            if p.title is not None:
                out[f"playbooks.{name}.title"] = p.title
            out |= {f"playbooks.{name}.manual.{k}": v for k, v in p.manual.items()}
            out |= {f"playbooks.{name}.then[{i}]": v for i, v in enumerate(p.then)}
        return out


NEUTRAL = Runbook()


def unknown_names(text: str, known: Mapping[str, str] | set[str]) -> list[str]:
    return [m for m in PLACEHOLDER.findall(text) if m not in known]


def fill(text: str, values: Mapping[str, str]) -> str:
    """`{name}` replaced by its value; any other brace is left as written."""
    return PLACEHOLDER.sub(lambda m: values.get(m[1], m[0]), text)
