"""Compatibility shims: the few objects of a provider's managed schemas that protected objects
may use and that the exit recreates on the target, each with what it does and what it does not
carry (docs/provider-exit.md). Anything managed that is not here has no plan and is refused.

What Supabase's own objects do is public behaviour: `auth.uid()` returns the `sub` claim of the
request's JWT, which PostgREST puts in the `request.jwt.claims` setting (older versions also in
`request.jwt.claim.sub`); `auth.role()` the `role` claim, `auth.email()` the `email` claim,
`auth.jwt()` the whole claims document."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql


@dataclass(frozen=True)
class Shim:
    kind: str
    identity: str              # as regclass/regprocedure print it with an empty search_path
    schema: str
    action: str
    consequence: str | None
    create: tuple[str, ...]
    columns: tuple[str, ...] = ()      # a table shim carries only these columns


def _claim(name: str, cast: str) -> str:
    return (f"select coalesce(nullif(current_setting('request.jwt.claim.{name}', true), ''), "
            f"(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> "
            f"'{name}'))::{cast}")


def _function(name: str, returns: str, body: str, what: str) -> Shim:
    return Shim("function in auth", f"auth.{name}()", "auth",
                f"create auth.{name}() on the target: {what}", None,
                ("create schema if not exists auth",
                 f"create or replace function auth.{name}() returns {returns} language sql "
                 f"stable as $$ {body} $$",
                 f"comment on function auth.{name}() is "
                 f"{sql.Literal('spectral exit shim: ' + what).as_string(None)}",
                 "grant usage on schema auth to public"))


SHIMS: dict[str, Shim] = {s.identity: s for s in (
    Shim("table in auth", "auth.users", "auth",
         "create auth.users on the target with the ids the protected tables refer to, and "
         "nothing else (no e-mail, password or metadata: identities stay with the provider)",
         "users sign in again through the new provider; an accepted re-invite gives the new "
         "identity the same user id, so every row that refers to it keeps working",
         ("create schema if not exists auth",
          "create table if not exists auth.users (id uuid primary key)",
          "comment on table auth.users is 'spectral exit shim: ids of the users the protected "
          "schemas refer to; identities stayed with the previous provider'",
          "grant usage on schema auth to public"),
         columns=("id",)),
    _function("uid", "uuid", _claim("sub", "uuid"),
              "the sub claim of the request's JWT, as Supabase's auth.uid() reads it"),
    _function("role", "text", _claim("role", "text"),
              "the role claim of the request's JWT, as Supabase's auth.role() reads it"),
    _function("email", "text", _claim("email", "text"),
              "the email claim of the request's JWT, as Supabase's auth.email() reads it"),
    _function("jwt", "jsonb",
              "select coalesce(nullif(current_setting('request.jwt.claims', true), ''), "
              "'{}')::jsonb", "the request's JWT claims, as Supabase's auth.jwt() reads them"),
)}
