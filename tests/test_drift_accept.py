"""A drop of a load-bearing table accepted on purpose (`spectral dr drift accept`): the drift
warned at every drill until the counts were back or the bound changed, so a purge that was
meant warned for ever. The acceptance is a ledger entry; from it on the accepted tables are
compared with the accepted counts, every other table as before. No server: the drills are
ledger entries written as a drill writes them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import spectral
from spectral.config.models import EnvironmentConfig
from spectral.drills.drift import NAME as DRIFT
from spectral.drills.drift import baseline, drift_check
from spectral.drills.drift_accept import accept
from spectral.drills.result import DrillOutcome
from spectral.errors import UsageError
from spectral.ledger import Entry, EntryKind

ENV = EnvironmentConfig(provider="local", load_bearing_tables=["core.a", "core.b"])
TOML = ('[environments.staging]\nprovider = "local"\nposture = "pitr"\nschemas = ["core"]\n'
        'load_bearing_tables = ["core.a", "core.b"]\n')


def _drill(counts: dict[str, int | None], entries: list[Entry]) -> dict[str, Any]:
    """A drill's ledger data, its drift checked against `entries` as a drill checks it."""
    check = drift_check(ENV, counts, baseline(entries, "e"), "e")
    return {"type": "functional", "outcome": "pass", "row_counts": counts,
            "checks": [{"name": DRIFT, "outcome": check.outcome.value, "detail": check.detail,
                        "evidence": list(check.evidence)}]}


def _entry(seq: int, kind: EntryKind, data: dict[str, Any]) -> Entry:
    return Entry(seq, datetime(2026, 12, seq, 3, tzinfo=UTC), kind, "e", data, "0", "h")


def test_an_accepted_drop_is_the_next_drills_baseline_and_only_for_its_table() -> None:
    entries = [_entry(1, EntryKind.DRILL, _drill({"core.a": 1000, "core.b": 50}, []))]
    entries.append(_entry(2, EntryKind.DRILL, _drill({"core.a": 600, "core.b": 50}, entries)))
    warned = drift_check(ENV, {"core.a": 600, "core.b": 50}, baseline(entries, "e"), "e")
    assert warned.outcome is DrillOutcome.WARN       # never accepted in silence
    record = accept(entries, "e", [], "retention purge of 2025 tenants")
    assert {t: (c.before, c.accepted) for t, c in record.tables.items()} == \
        {"core.a": (1000, 600)}
    assert record.drill_seq == 2 and "core.a: 1000 -> 600 rows (-40.0%)" in record.summary
    entries.append(_entry(3, EntryKind.DRIFT_ACCEPTED, record.to_json()))
    after = drift_check(ENV, {"core.a": 590, "core.b": 50}, baseline(entries, "e"), "e")
    assert after.outcome is DrillOutcome.PASS, after
    assert after.evidence[0] == "core.a: 600 -> 590 rows (-1.7%), within -10%"
    assert after.evidence[-1] == ("core.a: compared with 600 rows, its drift accepted on "
                                  "2026-12-03 03:00 UTC (ledger entry #3): retention purge of "
                                  "2025 tenants")
    # another table's drop is still compared with the last passing drill: not accepted
    other = drift_check(ENV, {"core.a": 600, "core.b": 5}, baseline(entries, "e"), "e")
    assert other.outcome is DrillOutcome.WARN and "core.b: 50 -> 5 rows" in other.detail
    # the next passing drill is the baseline again: the acceptance is behind it
    entries.append(_entry(4, EntryKind.DRILL, _drill({"core.a": 590, "core.b": 50}, entries)))
    assert baseline(entries, "e") is not None and baseline(entries, "e").accepted == {}


def test_only_the_newest_drills_drift_can_be_accepted_and_only_its_tables() -> None:
    with pytest.raises(UsageError, match="no drill of e has compared row counts yet"):
        accept([], "e", [], "why")
    entries = [_entry(1, EntryKind.DRILL, _drill({"core.a": 1000, "core.b": 50}, []))]
    entries.append(_entry(2, EntryKind.DRILL, _drill({"core.a": 1000, "core.b": 50}, entries)))
    with pytest.raises(UsageError, match="found every load-bearing table within its bound"):
        accept(entries, "e", [], "why")
    entries.append(_entry(3, EntryKind.DRILL, _drill({"core.a": 10, "core.b": 50}, entries)))
    with pytest.raises(UsageError, match=r"core\.b: not beyond its bound .*drifted: core\.a"):
        accept(entries, "e", ["core.b"], "why")
    with pytest.raises(UsageError, match="say why the drift is expected"):
        accept(entries, "e", ["core.a"], "  ")
    entries.append(_entry(4, EntryKind.DRIFT_ACCEPTED,
                          accept(entries, "e", ["core.a"], "why").to_json()))
    with pytest.raises(UsageError, match=r"was accepted already \(entry #4\)"):
        accept(entries, "e", [], "again")


def test_the_command_asks_records_and_refuses_in_one_line(tmp_path: Path) -> None:
    from spectral.config.load import load_config
    from spectral.ledger.open import open_ledger

    (tmp_path / "spectral.toml").write_text(TOML)
    ledger = open_ledger(load_config(None, cwd=tmp_path), "staging")
    first = _drill({"core.a": 1000, "core.b": 50}, [])
    ledger.append(EntryKind.DRILL, "staging", first)
    ledger.append(EntryKind.DRILL, "staging", _drill({"core.a": 100, "core.b": 50},
                                                     [_entry(1, EntryKind.DRILL, first)]))
    asked = spectral("dr", "drift", "accept", "core.a", "--reason", "purge", cwd=tmp_path)
    assert asked.returncode == 2 and "not confirmed: stdin is not a terminal" in asked.stderr, \
        asked.stderr
    assert len(ledger.entries()) == 2
    wrong = spectral("dr", "drift", "accept", "core.b", "--reason", "x", "--yes", cwd=tmp_path)
    assert wrong.returncode == 2 and wrong.stderr.count("\n") <= 2, wrong.stderr
    assert "core.b: not beyond its bound" in wrong.stderr
    done = spectral("--json", "dr", "drift", "accept", "--reason", "GDPR erasure batch",
                    "--yes", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    entry = json.loads(done.stdout)
    assert entry["kind"] == "drift_accepted" and entry["data"]["tables"] == \
        {"core.a": {"before": 1000, "accepted": 100}}
    assert spectral("dr", "log", "verify", cwd=tmp_path).returncode == 0
