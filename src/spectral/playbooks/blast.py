"""`spectral dr blast-radius --role R`: everything a (compromised) role could reach, through
every level of role membership, and the transactions committed while it was live."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from spectral.errors import UsageError

SYSTEM = "('pg_catalog', 'information_schema', 'pg_toast')"

ATTRIBUTES_SQL = """
select rolname, rolsuper, rolbypassrls, rolreplication, rolcreaterole, rolcreatedb, rolcanlogin,
       rolinherit, rolvaliduntil
from pg_roles where rolname = %(r)s
"""

MEMBERSHIP_SQL = """
with recursive up(roleid, depth, path) as (
    select m.roleid, 1, array[r.rolname::text]
    from pg_auth_members m join pg_roles r on r.oid = m.member where r.rolname = %(r)s
    union all
    select m.roleid, u.depth + 1, u.path || (select rolname::text from pg_roles
                                                 where oid = u.roleid)
    from pg_auth_members m join up u on m.member = u.roleid where u.depth < 20
)
select distinct on (g.rolname) g.rolname, u.depth, array_to_string(u.path, ' -> ')
from up u join pg_roles g on g.oid = u.roleid order by g.rolname, u.depth
"""

TABLES_SQL = f"""
select format('%%I.%%I', n.nspname, c.relname) as object, c.relkind::text, p.priv
from pg_class c join pg_namespace n on n.oid = c.relnamespace
cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES',
                        'TRIGGER']) p(priv)
where c.relkind in ('r', 'p', 'v', 'm', 'f') and n.nspname not in {SYSTEM}
  and n.nspname not like 'pg_temp%%' and has_table_privilege(%(r)s, c.oid, p.priv)
order by 1, 3
"""

# Column grants (GRANT UPDATE (col) ON t): privileges on some columns where the role lacks the
# same privilege on the whole table, so they are not already listed under the table.
COLUMNS_SQL = f"""
select format('%%I.%%I', n.nspname, c.relname), p.priv,
       string_agg(quote_ident(a.attname), ', ' order by a.attnum)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) p(priv)
where c.relkind in ('r', 'p', 'v', 'm', 'f') and n.nspname not in {SYSTEM}
  and n.nspname not like 'pg_temp%%'
  and not has_table_privilege(%(r)s, c.oid, p.priv)
  and has_column_privilege(%(r)s, c.oid, a.attnum, p.priv)
group by 1, 2 order by 1, 2
"""

SEQUENCES_SQL = f"""
select format('%%I.%%I', n.nspname, c.relname), p.priv
from pg_class c join pg_namespace n on n.oid = c.relnamespace
cross join unnest(array['USAGE', 'SELECT', 'UPDATE']) p(priv)
where c.relkind = 'S' and n.nspname not in {SYSTEM}
  and has_sequence_privilege(%(r)s, c.oid, p.priv)
order by 1, 2
"""

SCHEMAS_SQL = f"""
select n.nspname, p.priv from pg_namespace n cross join unnest(array['USAGE', 'CREATE']) p(priv)
where n.nspname not in {SYSTEM} and n.nspname not like 'pg_%%'
  and has_schema_privilege(%(r)s, n.oid, p.priv)
order by 1, 2
"""

FUNCTIONS_SQL = f"""
select format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
       p.prosecdef
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
where n.nspname not in {SYSTEM}
  and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass
                  and d.objid = p.oid and d.deptype = 'e')
  and has_function_privilege(%(r)s, p.oid, 'EXECUTE')
order by 1
"""

OWNED_SQL = f"""
select format('%%I.%%I', n.nspname, c.relname), pg_get_userbyid(c.relowner)
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p', 'v', 'm', 'S', 'f') and n.nspname not in {SYSTEM}
  and pg_has_role(%(r)s, c.relowner, 'USAGE')
order by 1
"""

POLICIES_SQL = """
select format('%%I.%%I', n.nspname, c.relname), p.polname, p.polcmd::text,
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
from pg_policy p join pg_class c on c.oid = p.polrelid join pg_namespace n on n.oid = c.relnamespace
where exists (select 1 from unnest(p.polroles) r(oid)
              where r.oid = 0 or pg_has_role(%(r)s, r.oid, 'USAGE'))
order by 1, 2
"""

DEFAULT_ACL_SQL = """
select pg_get_userbyid(d.defaclrole), coalesce(n.nspname, '(all schemas)'), d.defaclobjtype::text,
       a.privilege_type
from pg_default_acl d left join pg_namespace n on n.oid = d.defaclnamespace
cross join lateral aclexplode(d.defaclacl) a
where a.grantee = 0 or pg_has_role(%(r)s, a.grantee, 'USAGE')
order by 1, 2, 3, 4
"""


@dataclass
class BlastRadius:
    role: str
    attributes: dict[str, Any]
    memberships: list[dict[str, Any]]
    tables: dict[str, list[str]]
    columns: dict[str, list[str]]
    sequences: dict[str, list[str]]
    schemas: dict[str, list[str]]
    functions: list[dict[str, Any]]
    owned: list[dict[str, str]]
    policies: list[dict[str, Any]]
    default_privileges: list[dict[str, str]]
    warnings: list[str] = field(default_factory=list)
    transactions: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _grouped(rows: list[tuple[Any, ...]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for obj, *rest in rows:
        out.setdefault(obj, []).append(str(rest[-1]))
    return out


def blast_radius(conn: psycopg.Connection[Any], role: str) -> BlastRadius:
    params = {"r": role}
    attrs = conn.execute(ATTRIBUTES_SQL, params).fetchone()
    if attrs is None:
        raise UsageError(f"role {role!r} does not exist")
    names = ("role", "superuser", "bypassrls", "replication", "createrole", "createdb",
             "login", "inherit", "valid_until")
    attributes = {k: (str(v) if k == "valid_until" and v is not None else v)
                  for k, v in zip(names, attrs, strict=True)}
    result = BlastRadius(
        role, attributes,
        [{"role": r[0], "depth": r[1], "via": r[2]} for r in conn.execute(MEMBERSHIP_SQL, params)],
        _grouped(conn.execute(TABLES_SQL, params).fetchall()),
        _grouped([(t, f"{priv} ({cols})") for t, priv, cols in
                  conn.execute(COLUMNS_SQL, params).fetchall()]),
        _grouped(conn.execute(SEQUENCES_SQL, params).fetchall()),
        _grouped(conn.execute(SCHEMAS_SQL, params).fetchall()),
        [{"function": r[0], "security_definer": r[1]} for r in conn.execute(FUNCTIONS_SQL,
                                                                            params)],
        [{"object": r[0], "owner": r[1]} for r in conn.execute(OWNED_SQL, params)],
        [{"table": r[0], "policy": r[1], "command": r[2], "using": r[3], "with_check": r[4]}
         for r in conn.execute(POLICIES_SQL, params)],
        [{"grantor": r[0], "schema": r[1], "objtype": r[2], "privilege": r[3]}
         for r in conn.execute(DEFAULT_ACL_SQL, params)])
    if attributes["superuser"]:
        result.warnings.append("SUPERUSER: it could reach and change everything, including "
                               "the WAL archive settings and other roles")
    for attr, text in (("bypassrls", "BYPASSRLS: row-level security did not limit it"),
                       ("replication", "REPLICATION: it could stream the whole database"),
                       ("createrole", "CREATEROLE: it could create or alter roles")):
        if attributes[attr]:
            result.warnings.append(text)
    return result
