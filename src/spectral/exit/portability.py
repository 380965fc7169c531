"""The portability report: what the protected schemas depend on that a PostgreSQL elsewhere will
not have, where each is used, and what the exit does about it.

Read from the catalogs, not from a list of known names: every dependency (pg_depend) of an
object in a protected schema on an object outside them and outside pg_catalog; every role
named in their privileges and policies; the extensions they use; publications and event
triggers; function bodies that name a managed schema (PostgreSQL does not track those); and,
when a target is given, what its major version lacks (functions, privileges, column and
constraint kinds). Each item gets a plan: available on the target, a documented shim, left
out with a named consequence, or refused. One refusal stops the exit before anything is
written."""

from __future__ import annotations

import re
from typing import Any

import psycopg

from spectral.exit.around import default_privileges, left_behind, memberships
from spectral.exit.catalog import (
    BODIES_SQL,
    CATALOG_FUNCTIONS_SQL,
    DEPENDENCIES_SQL,
    EVENT_TRIGGERS_SQL,
    EXT_MEMBER_SQL,
    EXTENSIONS_SQL,
    FEATURES,
    OWNERS_SQL,
    PUBLICATIONS_SQL,
    ROLE_ATTRS_SQL,
    ROLES_SQL,
)
from spectral.exit.items import Item, Plan, Report, TargetFacts
from spectral.exit.shims import SHIMS
from spectral.verify.fingerprint import MANAGED_SCHEMAS

__all__ = ["Item", "Plan", "Report", "TargetFacts", "assess", "target_facts"]

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
# Schemas spectral itself installs next to the protected ones (the rules hook): moved with them.
CARRIED_SCHEMAS = ("spectral_hooks",)


# ---- what the source depends on ---------------------------------------------------------
def target_facts(conn: psycopg.Connection[Any], functions: list[str]) -> TargetFacts:
    """What the target has: its version, user, roles, extensions, privileges, functions."""
    version, user, createrole, superuser = conn.execute(
        "select current_setting('server_version_num')::int, current_user, "
        "(select rolcreaterole or rolsuper from pg_roles where rolname = current_user), "
        "(select rolsuper from pg_roles where rolname = current_user)"
    ).fetchone() or (0, "", False, False)
    roles = {r[0] for r in conn.execute("select rolname from pg_roles")}
    extensions = {r[0]: (r[1], r[2], bool(r[3])) for r in conn.execute(
        "select a.name, a.installed_version, a.default_version, "
        "coalesce((select bool_or(v.trusted) from pg_available_extension_versions v "
        "where v.name = a.name), false) from pg_available_extensions a")}
    privileges = {r[0] for r in conn.execute(
        "select distinct x.privilege_type from unnest(array['r', 's', 'f', 'n', 'T', 'l']) k "
        "cross join lateral aclexplode(acldefault(k::\"char\", "
        "(select oid from pg_roles where rolname = current_user))) x")}
    have = {f for f in functions if conn.execute(
        "select to_regprocedure(%s) is not null", (f,)).fetchone() == (True,)}
    return TargetFacts(int(version), str(user), bool(createrole), roles, extensions,
                       privileges, have, bool(superuser))


def assess(source: psycopg.Connection[Any], schemas: tuple[str, ...],
           target: psycopg.Connection[Any] | None = None) -> Report:
    """The portability report of `schemas` in `source`, against `target` when given."""
    s = {"s": list(schemas)}
    source.execute("select set_config('search_path', '', false)")   # names come qualified
    version = int((source.execute("select current_setting('server_version_num')::int")
                   .fetchone() or (0,))[0])
    functions = [r[0] for r in source.execute(CATALOG_FUNCTIONS_SQL, s)]
    facts = target_facts(target, functions) if target is not None else None
    items: list[Item] = []
    items += _dependencies(source, schemas, s, facts)
    items += _roles(source, s, facts)
    owners = [r[0] for r in source.execute(OWNERS_SQL, s)]
    if owners:
        to = facts.user if facts else "the target's connecting role"
        items.append(Item("owner", ", ".join(owners), Plan.MAP,
                          f"objects are created by, and owned by, {to}",
                          used_by=[f"owner of the objects in {', '.join(schemas)}"]))
    items += default_privileges(source, s, facts)
    items += left_behind(source, s)
    items += _publications_and_event_triggers(source, s)
    items += _bodies(source, schemas, s, facts)
    if facts is not None:
        items += _features(source, s, version, facts, functions)
    owner = owners[0] if owners else ""
    return Report(schemas, version, owner, facts, _merge(items))


def _merge(items: list[Item]) -> list[Item]:
    """One item per (kind, name), its uses together."""
    out: dict[tuple[str, str], Item] = {}
    for item in items:
        key = (item.kind, item.name)
        if key in out:
            out[key].used_by = sorted(set(out[key].used_by) | set(item.used_by))
        else:
            out[key] = item
    order = {Plan.REFUSE: 0, Plan.SHIM: 1, Plan.LEAVE_OUT: 2, Plan.MAP: 3, Plan.AVAILABLE: 4}
    return sorted(out.values(), key=lambda i: (order[i.plan], i.kind, i.name))


def _dependencies(source: psycopg.Connection[Any], schemas: tuple[str, ...],
                  s: dict[str, Any], facts: TargetFacts | None) -> list[Item]:
    items = []
    ext_versions = {r[0]: (r[1], r[2]) for r in source.execute(EXTENSIONS_SQL)}
    for dep_schema, dep_type, dep_identity, ref_schema, ref_type, ref_identity, extension, \
            column in source.execute(DEPENDENCIES_SQL):
        if dep_schema not in schemas or ref_schema in schemas or ref_schema in SYSTEM_SCHEMAS:
            continue
        if extension is None and ref_schema is None:
            continue                      # roles, databases, the schemas themselves
        use = f"{dep_type} {dep_identity}"
        if extension is not None:
            items.append(_extension(extension, ext_versions.get(extension), facts, use))
            continue
        if ref_schema in CARRIED_SCHEMAS:
            items.append(Item(f"schema {ref_schema}", ref_schema, Plan.AVAILABLE,
                              "moved with the protected schemas (spectral's own)", [use]))
            continue
        shim = SHIMS.get(ref_identity)
        if shim is not None and shim.columns and column and column not in shim.columns:
            items.append(Item(f"column in {ref_schema}", f"{ref_identity}.{column}",
                              Plan.REFUSE, f"no plan: the {ref_identity} shim carries only "
                              f"{', '.join(shim.columns)}", [use]))
        elif shim is not None:
            items.append(Item(f"{ref_type} in {ref_schema}", ref_identity, Plan.SHIM,
                              shim.action, [use], shim.consequence, shim))
        elif ref_schema in MANAGED_SCHEMAS:
            items.append(Item(f"{ref_type} in {ref_schema}", ref_identity, Plan.REFUSE,
                              f"no plan: {ref_schema} is managed by the provider and spectral "
                              f"has no shim for {ref_identity}", [use]))
        else:
            items.append(Item(f"{ref_type} in {ref_schema}", ref_identity, Plan.REFUSE,
                              f"no plan: {ref_schema} is not a protected schema; add it to "
                              f"the environment's schemas to move it too", [use]))
    return items


def _extension(name: str, source: tuple[str, str] | None, facts: TargetFacts | None,
               use: str) -> Item:
    version, where = source or (None, None)
    label = f"{name} {version or ''}".strip()
    if facts is None:
        return Item("extension", name, Plan.SHIM,
                    f"create extension {name} in schema {where} on the target (source has "
                    f"{label})", [use])
    installed, default, trusted = facts.extensions.get(name, (None, None, False))
    if installed:
        return Item("extension", name, Plan.AVAILABLE,
                    f"already installed on the target at {installed} (source {label})", [use])
    if default is None:
        return Item("extension", name, Plan.REFUSE,
                    f"no plan: {name} is not available on the target's server", [use])
    if not trusted and not facts.superuser:
        return Item("extension", name, Plan.REFUSE,
                    f"no plan: {name} is not a trusted extension and only a superuser can "
                    f"create it ({facts.user} is not one); have the new host's administrator "
                    f"install it first", [use])
    return Item("extension", name, Plan.SHIM,
                f"create extension {name} in schema {where} on the target at {default} "
                f"(source {label})", [use],
                None if default == version else f"version {default} instead of {version}")


def _roles(source: psycopg.Connection[Any], s: dict[str, Any],
           facts: TargetFacts | None) -> list[Item]:
    uses: dict[str, list[str]] = {}
    owners = {r[0] for r in source.execute(OWNERS_SQL, s)}
    for role, where, privilege in source.execute(ROLES_SQL, s):
        uses.setdefault(role, []).append(f"{where}" + (f" ({privilege})" if privilege else ""))
    attrs = {r[0]: r[1:] for r in source.execute(ROLE_ATTRS_SQL, {"r": list(uses)})}
    items = []
    user = facts.user if facts else "the target's connecting role"
    for role, used in sorted(uses.items()):
        if role in owners:   # an owner is mapped, and so are the privileges granted to it
            items.append(Item("role", role, Plan.MAP, f"mapped to {user}: what is granted "
                              f"to {role} is {user}'s on the target", used))
            continue
        superuser, bypassrls, _login = attrs.get(role, (False, False, False))
        lost = [a for a, on in (("SUPERUSER", superuser), ("BYPASSRLS", bypassrls)) if on]
        consequence = (f"created without {' and '.join(lost)} (the target's user cannot "
                       f"grant it): connections as {role} see only what policies allow"
                       if lost else None)
        if lost:
            consequence = f"{consequence}; a superuser of the new host can give it back: " \
                          f"ALTER ROLE {role} {' '.join(lost)}"
        if facts is not None and role in facts.roles:
            items.append(Item("role", role, Plan.AVAILABLE, "exists on the target", used))
        elif facts is None or facts.can_create_roles:
            items.append(Item("role", role, Plan.SHIM, f"create role {role} NOLOGIN on the "
                              f"target (the application's login roles are granted it there)",
                              used, consequence))
        else:
            items.append(Item("role", role, Plan.REFUSE, f"no plan: {role} does not exist on "
                              f"the target and {facts.user} cannot create roles; create it "
                              f"there first", used))
    return items + memberships(source, [i for i in items if i.plan is not Plan.REFUSE],
                               owners, facts)


def _publications_and_event_triggers(source: psycopg.Connection[Any],
                                     s: dict[str, Any]) -> list[Item]:
    items = [Item("publication", name, Plan.LEAVE_OUT, "not created on the target",
                  [f"publishes {tables or 'all tables'}"],
                  "logical replication from it does not follow the exit: recreate it on the "
                  "new host if a subscriber needs it")
             for name, tables in source.execute(PUBLICATIONS_SQL, s)]
    items += [Item("event trigger", name, Plan.LEAVE_OUT, "not created on the target "
                   "(event triggers need a superuser)", [f"on {event}, runs {fn}"],
                   f"{fn} no longer runs on {event}")
              for name, event, fn in source.execute(EVENT_TRIGGERS_SQL)]
    return items


_SCHEMAS = "|".join(MANAGED_SCHEMAS)
# a managed schema's object named in a body, each part bare (folded to lower case) or quoted
_MANAGED_NAME = re.compile(rf'(?:"({_SCHEMAS})"|\b({_SCHEMAS}))\s*\.\s*'
                           rf'(?:"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*))', re.IGNORECASE)


def managed_names(body: str) -> set[tuple[str, str]]:
    """(schema, name) of every managed schema's object a body names, as PostgreSQL reads
    them: `auth.users`, `"storage"."objects"`, `Auth.Uid`."""
    return {(qs or bare.lower(), qn.replace('""', '"') if qn else name.lower())
            for qs, bare, qn, name in _MANAGED_NAME.findall(body)}


def _bodies(source: psycopg.Connection[Any], schemas: tuple[str, ...],
            s: dict[str, Any], facts: TargetFacts | None) -> list[Item]:
    """Function bodies naming a managed schema's object: PostgreSQL does not record those
    dependencies, so they are found by name. An extension's own object is that extension's
    (planned as one); a table shim's missing columns named in the body are refused."""
    items = []
    versions = {r[0]: (r[1], r[2]) for r in source.execute(EXTENSIONS_SQL)}
    for function, body in source.execute(BODIES_SQL, s):
        for schema, name in sorted(managed_names(body or "")):
            if schema in schemas:
                continue
            found = next((k for k in SHIMS if k.split("(")[0] == f"{schema}.{name}"), None)
            use = f"body of function {function}"
            member = source.execute(EXT_MEMBER_SQL, {"schema": schema, "name": name}).fetchone()
            if member is not None:
                items.append(_extension(str(member[0]), versions.get(str(member[0])), facts,
                                        use))
            elif found is not None:
                shim = SHIMS[found]
                lacking = _columns_read(source, found, shim.columns, body or "")
                if lacking:
                    items.append(Item(f"column in {schema}", f"{found}.{lacking[0]}",
                                      Plan.REFUSE, f"no plan: the {found} shim carries only "
                                      f"{', '.join(shim.columns)} and {function} names "
                                      f"{', '.join(lacking)}; move {schema} too (add it to "
                                      f"the environment's schemas)", [use]))
                    continue
                items.append(Item(shim.kind, found, Plan.SHIM, shim.action, [use],
                                  shim.consequence, shim))
            else:
                items.append(Item(f"name in {schema}", f"{schema}.{name}", Plan.REFUSE,
                                  f"no plan: a function body uses {schema}.{name}, which the "
                                  f"provider manages and spectral has no shim for", [use]))
    return items


def _columns_read(source: psycopg.Connection[Any], table: str, carried: tuple[str, ...],
                  body: str) -> list[str]:
    """The columns of a shimmed table, not carried by its shim, that a body names."""
    if not carried:
        return []
    columns = [r[0] for r in source.execute(
        "select attname from pg_attribute where attrelid = to_regclass(%s) and attnum > 0 "
        "and not attisdropped order by attnum", (table,))]
    return [c for c in columns if c not in carried and
            re.search(rf'(?<![\w$"]){re.escape(c)}(?![\w$"])|"{re.escape(c)}"', body)]


def _features(source: psycopg.Connection[Any], s: dict[str, Any], version: int,
              facts: TargetFacts, functions: list[str]) -> list[Item]:
    items = []
    for since, what, query in FEATURES:
        if facts.major < since <= version // 10000:
            for (name,) in source.execute(query, s):
                items.append(Item("feature", f"{what}: {name}", Plan.REFUSE,
                                  f"no plan: PostgreSQL {facts.major} does not have it",
                                  [str(name)]))
    for fn in functions:
        if fn not in facts.functions:
            items.append(Item("feature", f"function {fn}", Plan.REFUSE,
                              f"no plan: PostgreSQL {facts.major} has no {fn}", [fn]))
    used = {str(r[2]) for r in source.execute(ROLES_SQL, s) if r[2]}
    for privilege in sorted(used - facts.privileges):
        items.append(Item("privilege", privilege, Plan.LEAVE_OUT,
                          f"grants of {privilege} are dropped",
                          [f"PostgreSQL {facts.major} has no {privilege} privilege"],
                          f"{privilege} (PostgreSQL {version // 10000}) must be granted again "
                          f"after an upgrade of the new host"))
    return items
