"""The core never prompts: it asks a Confirmer that the CLI provides and tests replace."""

from __future__ import annotations

from typing import Protocol


class Confirmer(Protocol):
    def confirm(self, question: str, details: list[str]) -> bool:
        """Show `details` (what will be destroyed or changed) and ask `question`."""


class AssumeYes:
    def confirm(self, question: str, details: list[str]) -> bool:
        return True


class AssumeNo:
    def confirm(self, question: str, details: list[str]) -> bool:
        return False
