"""What a drill's text says of its backup: `restored to` only when a copy was made (a damaged
backup is refused before any copy: the drill said it was restored)."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from spectral.cli.drill_cmds import print_drill
from spectral.drills.result import Check, DrillOutcome, DrillResult, DrillType


class _Record:
    def to_json(self) -> dict[str, Any]:
        return {"id": "r1"}

    def when_kept(self) -> str:
        return ""


def _text(result: DrillResult) -> str:
    console = Console(record=True, width=400)
    print_drill(console, result)
    return console.export_text()


def test_a_refused_backup_is_not_said_to_be_restored() -> None:
    refused = DrillResult(DrillType.FUNCTIONAL, "local", "2026-12-06T02:33:25+00:00", "B1",
                          "lsn 0/B00F7E8 (exclusive)")
    refused.checks.append(Check("backup matches its manifest", DrillOutcome.FAIL,
                                "backup B1 is damaged and will not be restored"))
    refused.error = "backup B1 is damaged and will not be restored"
    text = _text(refused)
    assert "backup B1 not restored (the target: lsn 0/B00F7E8 (exclusive))" in text
    assert "restored to" not in text
    restored = DrillResult(DrillType.FUNCTIONAL, "local", "2026-12-06T02:33:25+00:00", "B1",
                           "lsn 0/B00F7E8 (exclusive)", instance=_Record())
    assert "backup B1 restored to lsn 0/B00F7E8 (exclusive)" in _text(restored)
