"""The core never prompts: it asks a Confirmer that the CLI provides and tests replace."""

from __future__ import annotations

from typing import Protocol


class Confirmer(Protocol):
    def confirm(self, question: str, details: list[str]) -> bool:
        """Show `details` (what will be destroyed or changed) and ask `question`."""




class Operator(Confirmer, Protocol):
    """A person the tool asks to confirm things and to do what it cannot (a dashboard click).
    `perform` hands over the instructions and returns; the caller waits for their effect."""

    def perform(self, summary: str, steps: list[str]) -> None: ...


class Unattended:
    """No person: confirmations come from `answer`, and nothing can be clicked."""

    def __init__(self, answer: bool = False) -> None:
        self.answer = answer

    def confirm(self, question: str, details: list[str]) -> bool:
        return self.answer

    def perform(self, summary: str, steps: list[str]) -> None:
        from spectral.errors import RefusedError

        raise RefusedError(f"{summary}: this needs a person, and nobody is attending this run")


class AssumeYes(Unattended):
    def __init__(self) -> None:
        super().__init__(True)


class AssumeNo(Unattended):
    def __init__(self) -> None:
        super().__init__(False)
