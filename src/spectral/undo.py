"""Steps register their undo: whatever a run creates is torn down in reverse on any exit."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger("spectral.undo")
CRASH_ENV = "SPECTRAL_TEST_CRASH_AT"


def crash_point(step: str) -> None:
    """Test-only: die here, as a kill -9 would, when SPECTRAL_TEST_CRASH_AT names this step
    (how the tests prove every step boundary of a multi-step operation recoverable)."""
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


class UndoStack:
    """Collects teardown actions as resources are created; `unwind` runs them newest first.

    Used as a context manager it unwinds on every exit, including errors and Ctrl-C. An action
    can be `release`d when the resource is meant to outlive the run (e.g. `--keep`).
    """

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], object]]] = []
        self.errors: list[str] = []

    def push(self, what: str, action: Callable[[], object]) -> str:
        self._actions.append((what, action))
        return what

    def release(self, what: str) -> None:
        self._actions = [(w, a) for (w, a) in self._actions if w != what]

    def release_all(self) -> None:
        """Everything made is meant to stay (the run succeeded)."""
        self._actions = []

    def unwind(self) -> None:
        while self._actions:
            what, action = self._actions.pop()
            try:
                action()
            except BaseException as exc:  # an undo must never stop the other undos
                msg = f"teardown of {what} failed: {exc}"
                log.error(msg)
                self.errors.append(msg)

    def __enter__(self) -> UndoStack:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.unwind()
