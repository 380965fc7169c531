"""Issue 29, defect 7: the re-invite list of a provider exit, on the Supabase-shaped world
(tests/supabase_world.py). One CSV per proven exit: per identity the moved tables refer to (by
foreign key, found in the catalog) its id, its e-mail read from the source's auth.users, and
per referring table the number of rows that refer to it; nothing else. Mode 0600, in the
evidence folder, named in the exit's ledger entry; with `exit_invites` configured, the SQL that
invites them again. A failed exit, or one whose proof differs, writes none."""

from __future__ import annotations

import csv
import json
import stat
from pathlib import Path

import pytest

from conftest import ClusterFactory, exit_target, spectral
from spectral.pg.cluster import Cluster
from spectral.pg.conn import connect
from supabase_world import World, build

CONFIGS = {"public": ["public"], "all": ["public", "auth", "storage"]}
# columns of the world that hold a user's id without a foreign key (as upstream): the catalog
# cannot name them, and the list does not guess
NO_FOREIGN_KEY = {"auth.refresh_tokens", "storage.objects"}
INVITES = ('[environments.app.exit_invites]\ntable = "public.invitations"\n'
           'values = { user_ref = "invitee.id::uuid", '
           'expires_at = "now() + interval \'14 days\'" }\n')


def world(make_cluster: ClusterFactory, work: Path, schemas: list[str], *,
          invites: bool = False) -> tuple[Cluster, World]:
    source = make_cluster()
    built = build(source.conninfo(), major=18)
    with source.connect() as conn:      # the application's own invitation table
        conn.execute("create table public.invitations (id bigint generated always as identity "
                     "primary key, email text not null, user_ref uuid, "
                     "expires_at timestamptz not null)")
    (work / "spectral.toml").write_text(
        f'[environments.app]\nprovider = "local"\ndsn = "{source.conninfo()}"\n'
        f'schemas = {json.dumps(schemas)}\n' + (INVITES if invites else ""))
    return source, built



def evidence(work: Path) -> Path:
    return (work / ".spectral" / "app" / "evidence").resolve()


def expected(source: Cluster, built: World, schemas: list[str]
             ) -> tuple[list[str], dict[str, dict[str, int]]]:
    """The referring tables (by foreign key, in the moved schemas) and per user id the rows
    of each that refer to it, counted on the source as its superuser."""
    tables = sorted(t for t in built.user_id_columns if t.split(".")[0] in schemas and
                    t not in NO_FOREIGN_KEY and t != "auth.users")
    users: dict[str, dict[str, int]] = {}
    with source.connect() as conn:
        for table in tables:
            column = built.user_id_columns[table]
            for uid, n in conn.execute(f"select {column}::text, count(*) from {table} "
                                       f"group by 1"):
                users.setdefault(uid, {t: 0 for t in tables})[table] = n
        if "auth" in schemas:
            for (uid,) in conn.execute("select id::text from auth.users"):
                users.setdefault(uid, {t: 0 for t in tables})
    return tables, users


def exit_log(work: Path) -> list[dict[str, object]]:
    res = spectral("dr", "log", "--kind", "exit", "--json", cwd=work)
    assert res.returncode == 0, res.stderr
    return [e["data"] for e in json.loads(res.stdout)]


def reinvite_files(work: Path) -> list[Path]:
    return sorted(p for p in work.rglob("reinvites*") if "pgdata" not in str(p))


@pytest.mark.slow
@pytest.mark.parametrize("config", list(CONFIGS))
def test_the_reinvite_list_holds_ids_emails_and_counts_and_nothing_else(
        work_dir: Path, make_cluster: ClusterFactory, config: str) -> None:
    schemas = CONFIGS[config]
    source, built = world(make_cluster, work_dir, schemas)
    _tgt, dsn = exit_target(make_cluster)
    tables, users = expected(source, built, schemas)
    assert set(users) == set(built.user_ids) and "public.todos" in tables
    res = spectral("dr", "exit", "--to", dsn, "--yes", "--json", cwd=work_dir)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    result = json.loads(res.stdout)
    assert result["outcome"] == "proven"
    paths = [Path(p) for p in result["reinvites"]]
    lists = [p for p in paths if p.suffix == ".csv"]
    assert len(lists) == 1, paths                 # one list, not a copy of every table
    path = lists[0]
    assert path.parent == evidence(work_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "email", *tables]    # no other column
    assert {r[0]: (r[1], [int(n) for n in r[2:]]) for r in rows[1:]} == {
        uid: (built.email_of(uid), [counts[t] for t in tables]) for uid, counts in users.items()}
    text = path.read_text()
    assert "task " not in text and "User 1" not in text       # no to-do, no full name
    assert exit_log(work_dir)[0]["reinvites"] == result["reinvites"]   # named in the ledger
    assert paths == [path]                      # no invitation table configured: no SQL


def test_the_invitations_come_from_the_configured_table(work_dir: Path,
                                                        make_cluster: ClusterFactory) -> None:
    """exit_invites names the application's invitation table: the SQL inserts one invitation
    per user with an e-mail, with the configured columns' expressions, and runs on the
    target."""
    source, built = world(make_cluster, work_dir, ["public"], invites=True)
    _tgt, dsn = exit_target(make_cluster)
    _tables, users = expected(source, built, ["public"])
    res = spectral("dr", "exit", "--to", dsn, "--yes", "--json", cwd=work_dir)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    paths = [Path(p) for p in json.loads(res.stdout)["reinvites"]]
    assert len(paths) == 2 and all(p.parent == evidence(work_dir) for p in paths), paths
    invite_sql = next(p for p in paths if p.suffix == ".sql")
    assert stat.S_IMODE(invite_sql.stat().st_mode) == 0o600
    with connect(dsn) as conn:
        conn.execute(invite_sql.read_text().encode())
        invited = conn.execute("select user_ref::text, email from public.invitations "
                               "where expires_at > now() + interval '13 days'").fetchall()
    assert sorted(invited) == sorted((u, built.email_of(u)) for u in users)


def test_an_exit_whose_proof_differs_writes_no_list(work_dir: Path,
                                                    make_cluster: ClusterFactory) -> None:
    """The target's own default privileges give every table the exit creates a grant the
    source does not have: moved, but not proven; no list (the old code wrote its files)."""
    world(make_cluster, work_dir, ["public"])
    tgt, dsn = exit_target(make_cluster)
    with connect(tgt.conninfo().replace("dbname=postgres", "dbname=app")) as conn:
        conn.execute("create role onlooker nologin")
        conn.execute("alter default privileges for role app grant select on tables to onlooker")
    res = spectral("dr", "exit", "--to", dsn, "--yes", "--json", cwd=work_dir)
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    assert "differs from the source" in res.stdout + res.stderr, res.stdout + res.stderr
    assert reinvite_files(work_dir) == []
    entry = exit_log(work_dir)[0]
    assert entry["outcome"] == "differs" and entry["reinvites"] == []


def test_a_failed_exit_writes_no_list(work_dir: Path, make_cluster: ClusterFactory) -> None:
    """A target whose auth.users has no key the foreign keys can use: post-data fails and the
    exit is undone; no list."""
    world(make_cluster, work_dir, ["public"])
    _tgt, dsn = exit_target(make_cluster)
    with connect(dsn) as conn:
        conn.execute("create schema auth")
        conn.execute("create table auth.users (id uuid)")
    res = spectral("dr", "exit", "--to", dsn, "--yes", cwd=work_dir)
    assert res.returncode != 0 and "auth.users" in res.stderr, res.stderr[-3000:]
    assert reinvite_files(work_dir) == []
    entry = exit_log(work_dir)[0]
    assert entry["outcome"] == "failed" and entry["reinvites"] == []


def test_without_access_to_the_emails_the_column_is_empty_and_said(
        work_dir: Path, make_cluster: ClusterFactory, tmp_path: Path) -> None:
    """A source role that may read the moved tables but not auth.users: the ids and counts,
    an empty e-mail column, and one line that says why."""
    from spectral.exit.reinvite import read_reinvites, write_reinvites

    source, built = world(make_cluster, work_dir, ["public"])
    tables, users = expected(source, built, ["public"])
    with source.connect() as conn:
        conn.execute("create role exporter login bypassrls")
        conn.execute("grant usage on schema public, auth to exporter")
        conn.execute("grant select on all tables in schema public to exporter")
    said: list[str] = []
    folder = tmp_path / "evidence"
    with connect(source.conninfo().replace("user=postgres", "user=exporter"),
                 autocommit=False) as conn:
        found = read_reinvites(conn, ["public"])
        written = write_reinvites(found, folder, None, said.append)
    assert len(written) == 1 and len(said) == 1, (written, said)
    assert "auth.users.email" in said[0] and "\n" not in said[0]
    with open(written[0], newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["id", "email", *tables]
    assert {r[0]: (r[1], [int(n) for n in r[2:]]) for r in rows[1:]} == {
        uid: ("", [counts[t] for t in tables]) for uid, counts in users.items()}
