"""The remembered facts' file (walcommits.py) is read only up to a size no written file reaches:
a huge one (copied over, grown by hand) is a miss, not a parse of all of it in memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spectral.providers.local import walcommits

NAME = "000000010000000000000003"


def _cache(path: Path, padding: int) -> Path:
    doc = {"version": 1, "pad": "x" * padding, "segments": {
        NAME: {"key": "k", "commit": ["0/3000100", "2026-12-06T02:34:21.149+00:00"]}}}
    path.write_text(json.dumps(doc))
    return path


def test_a_cache_file_larger_than_any_written_is_a_miss(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(walcommits, "MAX_BYTES", 4096)
    small = _cache(tmp_path / "small.json", 100)
    assert walcommits._load(small)[NAME][0] == "k"
    huge = _cache(tmp_path / "huge.json", 5000)
    assert walcommits._load(huge) == {}


def test_the_bound_holds_the_largest_file_written() -> None:
    key = "|".join(f"{NAME}:16777216:{'9' * 19}:{'9' * 19}:{'9' * 12}" for _ in range(2))
    entry = {"key": key, "commit": ["FFFFFFFF/FFFFFFFF", "2026-12-06T02:34:21.149436+00:00"]}
    largest = json.dumps({"version": 1, "segments": {
        f"{n:024X}.partial": entry for n in range(walcommits.MAX_ENTRIES)}})
    assert len(largest) < walcommits.MAX_BYTES / 4
