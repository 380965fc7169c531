"""Issue 27, defect 14 at every step: kill -9 of the real `spectral dr exit` at each step of its
writes (SPECTRAL_TEST_CRASH_AT=<step>, the process sends itself SIGKILL there). The next exit
into the same target takes back what the killed one wrote (its intent record) and then moves and
proves the schemas: the target ends holding exactly what one clean exit leaves, no object more
or less, no role more, and no dump left behind. Killed after it finished (its record removed,
before the ledger's entry), the move is complete: the next exit refuses the non-empty target
and writes nothing."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from conftest import ClusterFactory, exit_target, spectral
from lifecycle_crashes import CRASH_ENV, EXIT_STEPS
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect, with_dbname

MOVED = "exit:finished"   # the move is complete: nothing is taken back
_CLEAN: dict[str, tuple[frozenset[str], frozenset[str]]] = {}   # per worker: one clean exit



def objects(c: Cluster) -> tuple[frozenset[str], frozenset[str]]:
    """Every object of the target database outside the system schemas (relations, functions,
    types, policies, triggers, schemas) and every role of the cluster."""
    with connect(with_dbname(c.conninfo(), "app")) as conn:
        rows = conn.execute(
            "with ns as (select oid, nspname from pg_namespace where nspname not like 'pg\\_%' "
            "and nspname <> 'information_schema') "
            "select 'schema ' || nspname from ns "
            "union all select 'rel ' || nspname || '.' || relname || ' ' || relkind::text "
            "from pg_class join ns on ns.oid = relnamespace "
            "union all select 'proc ' || p.oid::regprocedure::text from pg_proc p "
            "join ns on ns.oid = pronamespace "
            "union all select 'type ' || nspname || '.' || typname from pg_type "
            "join ns on ns.oid = typnamespace where typrelid = 0 "
            "union all select 'policy ' || polrelid::regclass::text || ' ' || polname "
            "from pg_policy "
            "union all select 'trigger ' || tgrelid::regclass::text || ' ' || tgname "
            "from pg_trigger where not tgisinternal "
            "union all select 'extension ' || extname from pg_extension").fetchall()
        roles = conn.execute("select rolname from pg_roles where rolname not like 'pg\\_%'")
        return frozenset(r[0] for r in rows), frozenset(r[0] for r in roles.fetchall())


def clean_exit(work: Path, make_cluster: ClusterFactory) -> tuple[frozenset[str], frozenset[str]]:
    """What one uninterrupted exit of the same source leaves in a fresh target."""
    if "state" not in _CLEAN:
        c, dsn = exit_target(make_cluster)
        res = spectral("dr", "exit", "--to", dsn, "--yes", cwd=work)
        assert res.returncode == 0, res.stdout + res.stderr
        _CLEAN["state"] = objects(c)
        c.stop(timeout=20)
    return _CLEAN["state"]


@pytest.mark.slow
@pytest.mark.parametrize("step", EXIT_STEPS)
def test_a_kill_at_every_step_of_an_exit_is_taken_back_by_the_next(
        local_reference: tuple[Path, str], make_cluster: ClusterFactory, step: str) -> None:
    work, _source = local_reference
    clean = clean_exit(work, make_cluster)
    tgt, dsn = exit_target(make_cluster)
    killed = spectral("dr", "exit", "--to", dsn, "--yes", cwd=work, env={CRASH_ENV: step})
    assert killed.returncode == -signal.SIGKILL, (step, killed.stdout + killed.stderr)
    left = list((work / ".spectral").glob("*/exit/intent.json"))
    assert bool(left) == (step != MOVED), (step, left)
    res = spectral("dr", "exit", "--to", dsn, "--yes", "--json", cwd=work)
    if step == MOVED:
        assert res.returncode == 2 and "not empty" in res.stderr, res.stdout + res.stderr
        assert "interrupted" not in res.stderr
    else:
        assert res.returncode == 0, (step, res.stdout + res.stderr)
        out = json.loads(res.stdout)
        assert out["outcome"] == "proven"
        wrote = step not in ("exit:begun", "exit:dumped")   # an undo statement was recorded
        assert bool(out["undone"]) == wrote, (step, out["undone"])
    assert objects(tgt) == clean, (step, objects(tgt) ^ clean)
    assert not list((work / ".spectral").glob("*/exit/*/dump")), "the killed run's dump was left"
    assert not list((work / ".spectral").glob("*/exit/intent.json")), "the intent record was left"
