"""Blast radius of a role granted through two levels of membership."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import ClusterFactory, _processes_under, spectral
from spectral.errors import UsageError
from spectral.pg.conn import connect
from spectral.playbooks.blast import blast_radius
from spectral.refdb.migrate import migrate

ROLES = """
create role top_role nologin;
create role mid_role nologin in role top_role;
create role leaked_login login in role mid_role;
grant usage on schema worlds, core, platform to top_role;
grant select on worlds.returns to top_role;
grant update (display_name) on core.users to top_role;
grant update on core.users to top_role;
create policy rules_top on platform.rules for select to top_role using (true);
alter default privileges in schema worlds grant select on tables to top_role;
create table worlds.scratch (id int);
alter table worlds.scratch owner to mid_role;
alter role mid_role bypassrls;
"""


def test_two_levels_of_membership(make_cluster: ClusterFactory) -> None:
    c = make_cluster()
    with c.connect() as conn:
        migrate(conn)
        conn.execute(ROLES.encode())
        result = blast_radius(conn, "leaked_login")
        with pytest.raises(UsageError, match="does not exist"):
            blast_radius(conn, "nobody_at_all")
    via = {m["role"]: (m["depth"], m["via"]) for m in result.memberships}
    assert via["mid_role"][0] == 1 and via["top_role"] == (2, "leaked_login -> mid_role")
    assert "SELECT" in result.tables["worlds.returns"]
    assert "UPDATE" in result.tables["core.users"]
    assert "DELETE" not in result.tables["core.users"]
    assert {"object": "worlds.scratch", "owner": "mid_role"} in result.owned
    assert any(p["table"] == "platform.rules" and p["policy"] == "rules_top"
               for p in result.policies)
    assert any(d["grantor"] == "postgres" and d["schema"] == "worlds"
               and d["privilege"] == "SELECT" for d in result.default_privileges)
    assert result.attributes["login"] is True
    # BYPASSRLS is not inherited through membership, so the role's own attributes are clean
    assert result.attributes["bypassrls"] is False and not result.warnings


@pytest.mark.server
def test_blast_radius_cli_lists_the_window_transactions(work_dir: Path) -> None:
    assert spectral("demo", cwd=work_dir).returncode == 0
    assert spectral("local", "up", cwd=work_dir).returncode == 0
    try:
        dsn = json.loads(spectral("local", "status", "--json", cwd=work_dir).stdout)["dsn"]
        start = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()
        with connect(dsn) as conn:
            conn.execute("create role leaked_service login")
            conn.execute("grant usage on schema worlds to leaked_service")
            conn.execute("grant select, delete on worlds.returns to leaked_service")
            conn.execute("delete from worlds.returns where id = 1")
        res = spectral("dr", "blast-radius", "--role", "leaked_service", "--from", start,
                       "--json", cwd=work_dir)
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["tables"]["worlds.returns"] == ["DELETE", "SELECT"]
        assert len(out["transactions"]) >= 4
        assert all(t["target_just_before"].startswith("--target-xid") for t in
                   out["transactions"])
        res = spectral("dr", "blast-radius", "--role", "nobody", cwd=work_dir)
        assert res.returncode == 2 and "does not exist" in res.stderr
    finally:
        spectral("local", "down", cwd=work_dir)
    assert _processes_under(work_dir) == []
