"""A Supabase-shaped database for tests, written by us from the public facts of Supabase's
repositories (tests/supabase_world/*.sql name the upstream repository, files, commit and
licence in their headers): the image's roles, grants and default privileges, the PostgREST
event triggers, the auth and storage schemas with their owners, and the documented
user-management application in `public` (profiles by trigger, to-dos, documents in a private
bucket, policies through auth.uid()).

`build` runs one script per file on the `postgres` database of a fresh cluster as the
bootstrap superuser `postgres` (the roles are cluster-wide: one world per cluster).
`rows_as` reads a table the way PostgREST does for a signed-in user.

Facts only, from: github.com/supabase/postgres @ 7db7e1a9e34b9ffb9b0e3372ccf08eb4fa772f4b
(The PostgreSQL License; migrations/db/init-scripts/, migrations/db/migrations/, ansible/files/
pgbouncer_config/), github.com/supabase/auth @ bc32168e13fdc928c98b449fc76bc3fdb9a293c5 (MIT;
migrations/), github.com/supabase/storage @ 4fa61fba9371c4bd40cbb81509f07bcb3af21683
(Apache-2.0; migrations/tenant/), github.com/supabase/supabase examples/user-management and
examples/todo-list migrations (Apache-2.0); each SQL file names its files and commit."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg import sql

from spectral.pg.conn import connect

SCRIPTS = Path(__file__).parent / "supabase_world"
CORE = ("01_image.sql", "02_auth.sql", "03_storage.sql", "04_app.sql")
STORAGE_FK = "05_storage_fk.sql"
SEED = "06_seed.sql"

# every table that holds a user's id, and the column that holds it
USER_ID_COLUMNS: dict[str, str] = {
    "auth.users": "id",
    "auth.identities": "user_id",
    "auth.sessions": "user_id",
    "auth.refresh_tokens": "user_id",      # varchar, not a foreign key (as upstream)
    "public.profiles": "id",
    "public.todos": "user_id",
    "public.documents": "owner",
    "storage.objects": "owner",            # uuid, no foreign key since storage's 0017
}


@dataclass(frozen=True)
class World:
    """What a test needs to know about a built world."""

    major: int
    storage_fk: bool
    user_ids: tuple[str, ...]              # ordered by e-mail: user1@..., user2@..., ...
    emails: tuple[str, ...]
    user_id_columns: dict[str, str]
    rls_tables: tuple[str, ...]            # tables behind policies through auth.uid()

    def email_of(self, user_id: str) -> str:
        return self.emails[self.user_ids.index(user_id)]


def build(conninfo: str, *, major: int, storage_fk: bool = False) -> World:
    """Build the world on a fresh cluster's `postgres` database; `conninfo` connects as the
    bootstrap superuser. `major` is the server's major version (checked)."""
    with connect(conninfo, timeout=30) as conn:
        row = conn.execute("select current_setting('server_version_num')::int / 10000, "
                           "current_database(), rolsuper from pg_roles "
                           "where rolname = current_user").fetchone()
        assert row == (major, "postgres", True), f"not a fresh cluster's postgres: {row}"
        names = [*CORE, *([STORAGE_FK] if storage_fk else []), SEED]
        for name in names:
            conn.execute((SCRIPTS / name).read_text().encode())
        users = conn.execute("select id::text, email::text from auth.users "
                             "order by length(email), email").fetchall()
    return World(major=major, storage_fk=storage_fk,
                 user_ids=tuple(u[0] for u in users), emails=tuple(u[1] for u in users),
                 user_id_columns=dict(USER_ID_COLUMNS),
                 rls_tables=("public.todos", "public.documents", "storage.objects"))


def claims(user_id: str | None, email: str | None = None) -> dict[str, Any]:
    """The JWT claims PostgREST puts in request.jwt.claims: a signed-in user, or anon."""
    if user_id is None:
        return {"role": "anon", "iss": "supabase"}
    out: dict[str, Any] = {"sub": user_id, "role": "authenticated", "aud": "authenticated",
                           "iss": "supabase"}
    if email is not None:
        out["email"] = email
    return out


def rows_as(dsn: str, user_id: str | None, table: str, *,
            email: str | None = None) -> list[tuple[Any, ...]]:
    """The rows `table` ("schema.name") shows a request with this user's JWT (user_id None:
    anon), ordered by their text form. As PostgREST does it, in one transaction: `set local
    role authenticated` (or anon), the claims as JSON in request.jwt.claims and, for functions
    written for PostgREST < 9, one setting per claim (request.jwt.claim.sub, ...).

    The connecting role must be the API role itself or allowed to SET ROLE to it: a member of
    `authenticated`/`anon` (on PostgreSQL 16+ with the SET option, the default of GRANT), as
    `authenticator` is; a superuser works too. It needs nothing else: what the API role is
    granted and the policies decide what is seen."""
    jwt = claims(user_id, email)
    role = jwt["role"]
    schema, name = table.split(".", 1)
    with connect(dsn, autocommit=False) as conn, conn.transaction():
        allowed = conn.execute(
            "select current_user = %s or pg_has_role(current_user, %s, "
            "case when current_setting('server_version_num')::int >= 160000 then 'SET' "
            "else 'MEMBER' end)", (role, role)).fetchone()
        if not (allowed and allowed[0]):
            raise PermissionError(f"the connecting role may not SET ROLE {role}: grant {role} "
                                  f"to it (as {role} is granted to authenticator)")
        conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
        conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(jwt),))
        for key, value in jwt.items():
            conn.execute("select set_config(%s, %s, true)", (f"request.jwt.claim.{key}",
                                                              str(value)))
        query = sql.SQL("select * from {}.{} t order by t::text").format(
            sql.Identifier(schema), sql.Identifier(name))
        return list(conn.execute(query).fetchall())
