"""Row-count drift bounds as people write them: `-5%` (a drop of more than 5% since the last
passing drill is drift; growth is not), `+20%` (growth of more than 20% only), `5%` (either way),
`off` (never). A drill compares each load-bearing table's count with the previous passing
drill's (drills/drift.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator

DEFAULT_DRIFT = "-10%"     # a load-bearing table that lost a tenth of its rows between drills
_RE = re.compile(r"^\s*([+-]?)\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class DriftBound:
    """How far a count may move between two passing drills before the drill warns."""

    percent: float | None                     # None: never drift ("off")
    direction: Literal["drop", "growth", "both"] = "both"

    def beyond(self, before: int, now: int) -> bool:
        """Whether going from `before` rows to `now` moves further than the bound allows (a
        move of exactly the bound is within it)."""
        if self.percent is None or before == now:
            return False
        if now < before:
            return self.direction != "growth" and (before - now) * 100 > self.percent * before
        return self.direction != "drop" and (now - before) * 100 > self.percent * before

    def describe(self) -> str:
        if self.percent is None:
            return "off"
        said = f"{self.percent:g}%"
        return {"drop": f"a drop of more than {said}", "growth": f"growth of more than {said}",
                "both": f"a change of more than {said} either way"}[self.direction]


def parse_drift(text: str) -> DriftBound:
    """The bound `text` says; ValueError naming the expectation otherwise."""
    if text.strip().lower() == "off":
        return DriftBound(None)
    m = _RE.match(text)
    if not m:
        raise ValueError(f"expected a bound such as '-5%' (a drop), '+20%' (growth), '5%' "
                         f"(either way) or 'off', got {text!r}")
    sign = m.group(1)
    return DriftBound(float(m.group(2)),
                      "drop" if sign == "-" else "growth" if sign == "+" else "both")


def _checked(text: str) -> str:
    parse_drift(text)
    return text


# kept as written in the file (the reference shows it so); parsed where it is used
Drift = Annotated[str, AfterValidator(_checked)]
