"""The configured contract on a real database: a contract that holds passes; a missing table,
column, RLS or foreign key fails by name; no contract is "not configured", never a pass."""

from __future__ import annotations

import pytest

from spectral.config.contract import Contract
from spectral.config.load import parse_config
from spectral.drills.contract import check_contract
from spectral.drills.result import DrillOutcome, DrillResult, DrillType
from spectral.errors import ConfigError

SCHEMA = """
create schema app;
create table app.accounts (id int primary key, email text);
create table app.audit (id int primary key, account_id int references app.accounts);
create schema billing;
create table billing.invoices (id int primary key, account_id int references app.accounts);
"""


def _contract(**extra: object) -> Contract:
    return Contract.model_validate({"tables": ["app.accounts"], "referenced_by": ["billing"],
                                    **extra})


def test_a_contract_that_holds_passes_and_breaks_by_name(make_cluster) -> None:  # type: ignore[no-untyped-def]
    c = make_cluster()
    with c.connect() as conn:
        conn.execute(SCHEMA)
        assert check_contract(conn, _contract()).outcome is DrillOutcome.PASS
        strict = Contract.model_validate({"tables": [
            {"name": "app.accounts", "columns": ["id", "email", "tier"], "rls": True}]})
        check = check_contract(conn, strict)
        assert check.outcome is DrillOutcome.FAIL
        assert any("tier MISSING" in e and "row-level security NOT enabled" in e
                   for e in check.evidence)
        conn.execute("alter table billing.invoices drop constraint invoices_account_id_fkey")
        check = check_contract(conn, _contract())
        assert check.outcome is DrillOutcome.FAIL
        assert any("no foreign key from billing" in e for e in check.evidence)
        conn.execute("drop table app.accounts cascade")
        check = check_contract(conn, _contract(referenced_by=[]))
        assert check.outcome is DrillOutcome.FAIL and "app.accounts: MISSING" in check.evidence


def test_no_contract_is_not_configured_and_never_a_pass(make_cluster) -> None:  # type: ignore[no-untyped-def]
    c = make_cluster()
    with c.connect() as conn:
        check = check_contract(conn, None)
    assert check.outcome is DrillOutcome.NOT_CONFIGURED
    result = DrillResult(DrillType.FUNCTIONAL, "x", "now", checks=[check])
    assert result.outcome is DrillOutcome.COULD_NOT_VERIFY        # nothing else was checked


def test_contract_configuration_errors_name_the_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match=r"contract\.tables\.0\.name"):
        parse_config({"environments": {"x": {"provider": "local",
                                             "contract": {"tables": ["accounts"]}}}},
                     tmp_path / "spectral.toml").environment("x")


@pytest.mark.server
def test_a_local_environment_protects_the_database_it_names(work_dir) -> None:  # type: ignore[no-untyped-def]
    """`database = "shop"`: created on first use; drills, snapshots and psql reach it."""
    import json

    from conftest import spectral

    (work_dir / "spectral.toml").write_text(
        '[environments.shop]\nprovider = "local"\ndatabase = "shop"\nschemas = ["public"]\n'
        'load_bearing_tables = ["public.orders"]\n\n[environments.shop.contract]\n'
        'tables = ["public.customers"]\nreferenced_by = ["public.orders"]\n')
    try:
        res = spectral("local", "psql", "--", "-c",
                       "create table customers (id int primary key); create table orders "
                       "(id int primary key, customer int references customers); insert into "
                       "customers values (1); insert into orders values (1, 1)", cwd=work_dir)
        assert res.returncode == 0, res.stderr
        assert spectral("dr", "backup", cwd=work_dir).returncode == 0
        res = spectral("dr", "drill", "functional", "--json", cwd=work_dir)
        result = json.loads(res.stdout)
        assert res.returncode == 0, result
        checks = {c["name"]: c["outcome"] for c in result["checks"]}
        assert checks["contract (public.customers; referenced by public.orders)"] == "pass"
        assert checks["row counts of load-bearing tables"] == "pass"
        status = json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)
        assert status["dsn"].startswith("postgresql://postgres@/shop?")
        assert spectral("local", "psql", "--", "-c", "drop table customers cascade",
                        cwd=work_dir).returncode == 0
        res = spectral("dr", "drill", "functional", "--json", cwd=work_dir)
        broken = next(c for c in json.loads(res.stdout)["checks"]
                      if c["name"].startswith("contract"))
        assert res.returncode == 1 and broken["outcome"] == "fail"
        assert "public.customers: MISSING" in broken["evidence"]
    finally:
        spectral("local", "down", cwd=work_dir)


def test_the_newest_change_is_found_from_defaults_not_names(make_cluster) -> None:  # type: ignore[no-untyped-def]
    """A table whose change column is called last_update (default now()) is seen; a timestamp
    column without such a default is not a change column; configured columns win."""
    from spectral.verify.fingerprint import Options, take

    c = make_cluster()
    with c.connect() as conn:
        conn.execute("create table film (id int primary key, released timestamptz, "
                     "last_update timestamptz not null default now())")
        conn.execute("insert into film values (1, '2001-01-01', '2026-05-01')")
    doc = take(c.conninfo(), Options(("public",)))
    assert str(doc.tables["public.film"].last_change).startswith("2026-05-01")
    chosen = take(c.conninfo(), Options(("public",),
                                        last_change=(("public.film", "released"),)))
    assert str(chosen.tables["public.film"].last_change).startswith("2001-01-01")
