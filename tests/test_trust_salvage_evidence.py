"""Found by the lifecycle's salvage crash rule (session 9): a salvage killed after it wrote the
rows back, before it recorded them, lost its evidence. The rows were back, no ledger entry said
so, and the rerun recorded "salvaged 0 row(s)" with every row as a conflict ("a row with this
key was written after the transaction"). A rerun now recognises rows that are already exactly
as the transaction found them and records them as back."""

from __future__ import annotations

import json

import pytest

from test_trust_crash import Env, env  # noqa: F401  (the fixture)


@pytest.mark.server
def test_a_salvage_killed_before_it_recorded_is_recorded_by_its_rerun(env: Env) -> None:  # noqa: F811
    env.sql("insert into t select g, 'more' from generate_series(12, 40) g")
    env.ok("dr", "backup")
    xid = env.commit("delete from t where id between 20 and 29")
    args = ("dr", "salvage", "--table", "public.t", "--before-xid", str(xid), "--yes")
    env.killed(*args, step="salvage:written")
    assert set(range(20, 30)) <= set(env.rows())          # written in one transaction
    res = env.ok(*args)
    entries = [json.loads(line) for line in
               (env.dir / ".spectral" / "staging" / "evidence" / "ledger.jsonl"
                ).read_text().splitlines()]
    salvages = [e for e in entries if e["data"].get("playbook") == "self-inflicted"]
    assert len(salvages) == 1, salvages
    data = salvages[0]["data"]
    assert data["conflicts"] == [], data
    assert data["restored"] == 0 and data["already_back"] == 10, data
    assert "10 row(s)" in data["summary"] and "already back" in data["summary"], data
    assert "0 conflict(s)" in res.stdout and "10 already back" in res.stdout, res.stdout
    assert env.rows().count(20) == 1
