"""What surrounds the moved schemas, read from the catalogs: the default privileges set in
them, the members of the roles they name (PostgREST's login role), and what outside them
depends on them and stays behind."""

from __future__ import annotations

from typing import Any

import psycopg

from spectral.exit.catalog import DEFAULT_ACLS_SQL, MEMBERS_SQL, REVERSE_SQL
from spectral.exit.items import Item, Plan, TargetFacts
from spectral.exit.shims import SHIMS
from spectral.verify.compare import OBJECT_WORDS


def default_privileges(source: psycopg.Connection[Any], s: dict[str, Any],
                        facts: TargetFacts | None) -> list[Item]:
    """Default privileges are set FOR ROLE their role; on the target they are set for its
    user, who creates the objects there (the API roles keep their grants on new tables)."""
    user = facts.user if facts else "the target's connecting role"
    items = []
    for role, objtype, schema in source.execute(DEFAULT_ACLS_SQL, s):
        what = OBJECT_WORDS.get(objtype, objtype)
        name = f"on {what} created by {role} in schema {schema}"
        if facts is not None and role == facts.user:
            items.append(Item("default privileges", name, Plan.AVAILABLE,
                              f"set for {user}, as on the source", [f"schema {schema}"]))
            continue
        items.append(Item("default privileges", name, Plan.MAP,
                          f"set for {user} instead of {role}: {what} {user} creates in "
                          f"{schema} get the same privileges", [f"schema {schema}"],
                          f"{what} other roles create in {schema} on the target do not"))
    return items


def memberships(source: psycopg.Connection[Any], roles: list[Item], owners: set[str],
                 facts: TargetFacts | None) -> list[Item]:
    """The source's members of the roles the schemas name (PostgREST's login role, member of
    the API roles it switches to): granted there too, the member created when missing. A
    login role gets no password from the exit (none is readable, nor should be)."""
    names = [i.name for i in roles if i.kind == "role" and i.plan is not Plan.MAP]
    items = []
    for role, member, login, inherit in source.execute(MEMBERS_SQL, {"r": names}):
        if member in owners or (facts is not None and member == facts.user):
            continue
        exists = facts is not None and member in facts.roles
        action = (f"grant {role} to {member}" + ("" if exists else
                  f", creating {member} NOLOGIN{'' if inherit else ' NOINHERIT'} first"))
        consequence = (f"{member} logs in on the source: on the target it cannot until it "
                       f"has a password (ALTER ROLE {member} LOGIN PASSWORD '...')"
                       if login and not exists else None)
        if facts is not None and not facts.can_create_roles:
            items.append(Item("role membership", f"{member} in {role}", Plan.LEAVE_OUT,
                              "not granted", [f"member of {role}"],
                              f"{member} cannot act as {role} on the target"))
            continue
        items.append(Item("role membership", f"{member} in {role}", Plan.SHIM, action,
                          [f"member of {role}"], consequence, grant=(role, member, inherit)))
    return items


def left_behind(source: psycopg.Connection[Any], s: dict[str, Any]) -> list[Item]:
    """What depends on the moved schemas from outside them stays behind: named, with what no
    longer happens on the target (a trigger on an identity shim's table can be carried)."""
    items = []
    for kind, name, table, uses in source.execute(REVERSE_SQL, s):
        if kind == "trigger":
            fn = uses.removeprefix("runs ")
            consequence = f"{fn} no longer runs when {table} changes"
            shim = SHIMS.get(table)
            action = (f"not created; to carry it on the {table} shim, create it there after "
                      f"the exit (the shim has only {', '.join(shim.columns)})"
                      if shim is not None and shim.columns else "not created on the target")
        elif kind == "foreign key":
            action, consequence = "not created on the target", \
                f"{table} is not moved: nothing checks its references any more"
        else:
            action, consequence = "not created on the target", \
                f"{name} is not moved and would {uses} there"
        items.append(Item(f"{kind} outside the schemas", name, Plan.LEAVE_OUT, action,
                          [f"{kind} {name} {uses}"], consequence))
    return items
