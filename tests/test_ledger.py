"""The ledger detects any edited, removed or reordered entry, and never holds a secret."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from spectral.ledger import EntryKind, Ledger
from spectral.redact import register_secret


@dataclass(frozen=True)
class Said:
    """A restore entry that holds only its summary (the outbox takes typed payloads)."""

    KIND: ClassVar[EntryKind] = EntryKind.RESTORE
    summary: str

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary}


def filled(tmp_path: Path, n: int = 5) -> Ledger:
    ledger = Ledger(tmp_path / "evidence")
    for i in range(n):
        ledger.append(EntryKind.DRILL, "local", {"outcome": "pass", "i": i})
    return ledger


def lines(ledger: Ledger) -> list[str]:
    return ledger.path.read_text().splitlines()


def test_intact_ledger_verifies(tmp_path: Path) -> None:
    ledger = filled(tmp_path)
    assert ledger.verify() == []
    assert [e.seq for e in ledger.entries()] == [1, 2, 3, 4, 5]


def test_edited_entry_is_detected(tmp_path: Path) -> None:
    ledger = filled(tmp_path)
    text = lines(ledger)
    d = json.loads(text[2])
    d["data"]["outcome"] = "fail"
    text[2] = json.dumps(d, sort_keys=True)
    ledger.path.write_text("\n".join(text) + "\n")
    problems = ledger.verify()
    assert any("entry 3 was edited" in p.problem for p in problems)


def test_removed_entry_is_detected(tmp_path: Path) -> None:
    ledger = filled(tmp_path)
    text = lines(ledger)
    del text[1]
    ledger.path.write_text("\n".join(text) + "\n")
    assert any("does not follow" in p.problem for p in ledger.verify())


def test_reordered_entries_are_detected(tmp_path: Path) -> None:
    ledger = filled(tmp_path)
    text = lines(ledger)
    text[1], text[2] = text[2], text[1]
    ledger.path.write_text("\n".join(text) + "\n")
    assert ledger.verify()


def test_truncated_tail_is_detected_by_the_head(tmp_path: Path) -> None:
    ledger = filled(tmp_path)
    ledger.path.write_text("\n".join(lines(ledger)[:3]) + "\n")
    assert any("removed from the end" in p.problem for p in ledger.verify())


def test_an_append_killed_before_its_head_is_no_removal(tmp_path: Path) -> None:
    """Found by the lifecycle's long profile (session 11, kill -9 during a drill): the entry
    was written, the head not yet; verify reported entries removed from the end. The entry
    chains on the head, so nothing is missing, and the next append heals the head."""
    ledger = filled(tmp_path)
    head = ledger.head.read_text()
    ledger.append(EntryKind.DRILL, "production", {"outcome": "pass"})
    ledger.head.write_text(head)            # killed between the entry and the head
    assert ledger.verify() == []
    ledger.append(EntryKind.DRILL, "production", {"outcome": "pass"})
    assert ledger.verify() == []
    ledger.path.write_text("\n".join(lines(ledger)[:-2]) + "\n")    # two removed: named
    assert any("removed from the end" in p.problem for p in ledger.verify())


def test_garbage_line_is_detected(tmp_path: Path) -> None:
    ledger = filled(tmp_path)
    with open(ledger.path, "a") as f:
        f.write("not json\n")
    assert any("not valid JSON" in p.problem for p in ledger.verify())


def test_concurrent_writers_do_not_interleave(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "evidence")

    def write(k: int) -> None:
        for i in range(25):
            Ledger(tmp_path / "evidence").append(EntryKind.SNAPSHOT, "local", {"w": k, "i": i})

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.verify() == []
    assert len(ledger.entries()) == 100


def test_no_secret_is_written(tmp_path: Path) -> None:
    register_secret("ledger-secret-value-1")
    ledger = Ledger(tmp_path / "evidence")
    ledger.append(EntryKind.INCIDENT, "local",
                  {"note": "dsn postgresql://u:pw-in-dsn@h/db and ledger-secret-value-1"})
    text = ledger.path.read_text()
    assert "ledger-secret-value-1" not in text and "pw-in-dsn" not in text
    assert ledger.verify() == []


def test_owed_entries_are_appended_once_whatever_step_was_killed(tmp_path: Path) -> None:
    """A backend owes entries (ledger/outbox.py); the features append them. Owed twice under
    one key (killed between owing and noting it), or appended but not yet settled (killed
    between the two), the ledger still gets each entry exactly once, in the order owed."""
    from spectral.ledger.outbox import Outbox, deliver

    ledger, outbox = filled(tmp_path, 1), Outbox(tmp_path)
    outbox.owe(Said("in-place restore to x"), "restore-1-at 12:00")
    outbox.owe(Said("in-place restore to x (finished)"),
               "restore-1-at 12:00")                           # the same one, owed again
    outbox.owe(Said("undo"))
    assert outbox.owed()[0].key == "restore-1-at-12-00"   # a safe file name
    assert [o.data["summary"] for o in outbox.owed()][1] == "undo"
    assert deliver(outbox, ledger, "local") == 2 and outbox.owed() == []
    outbox.owe(Said("in-place restore to x (finished)"),
               "restore-1-at 12:00")                           # appended, not settled
    assert deliver(outbox, ledger, "local") == 0 and outbox.owed() == []
    got = [e.data for e in ledger.entries()[1:]]
    assert got == [{"summary": "in-place restore to x (finished)"}, {"summary": "undo"}]
    assert ledger.verify() == []
    outbox.owe(Said("../../x"), "../../etc/passwd")
    assert [p.parent for p in outbox.dir.iterdir()] == [outbox.dir]   # never outside it


def test_every_entry_is_written_from_a_typed_payload() -> None:
    """Outside the ledger's own code an entry is added as a typed payload (`Ledger.record`,
    `Outbox.owe`), never as a kind and a dict built at the call."""
    import re

    src = Path(__file__).parent.parent / "src" / "spectral"
    raw = re.compile(r"ledger\.append\(|\.append\(\s*(EntryKind\.|\w+\.KIND\b)|"
                     r"\.owe\(\s*(EntryKind\.|\w+\.KIND\b)")
    found = [f"{path.relative_to(src)}:{number}"
             for path in sorted(src.rglob("*.py")) if path.parent.name != "ledger"
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if raw.search(line)]
    assert found == []


def test_an_unreadable_evidence_store_is_not_an_empty_ledger(tmp_path: Path) -> None:
    """An evidence folder that is a file (or a ledger that is a folder) read as '0 entries,
    intact' in dr status --all, and an alert's append failed with '[Errno 17] File exists'."""
    import pytest

    from spectral.errors import CouldNotVerify

    (tmp_path / "evidence").write_text("not a folder\n")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "ledger.jsonl").mkdir()
    for ledger in (Ledger(tmp_path / "evidence"), Ledger(tmp_path / "store")):
        for call in (ledger.entries, ledger.verify,
                     lambda led=ledger: led.append(EntryKind.INCIDENT, "local", {"x": 1})):
            with pytest.raises(CouldNotVerify, match="cannot be read"):
                call()
    assert (tmp_path / "evidence").read_text() == "not a folder\n"
