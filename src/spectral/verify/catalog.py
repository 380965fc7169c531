"""Canonical descriptions of every object in a schema, read from the system catalogs.

Rules that make the description stable: no OIDs, relfilenodes or statistics; objects keyed by
kind and name, never by creation order; columns by their position among live columns (not
attnum, which keeps gaps after a DROP COLUMN); ACLs expanded against their defaults so an
explicit default and NULL read the same; expressions deparsed with an empty search_path so every
name is schema-qualified. Extension members are left out (the extension is listed instead)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

Objects = dict[str, dict[str, Any]]


def acl(expr: str, kind: str, owner: str) -> str:
    """SQL for a sorted text array describing an ACL, NULL meaning the kind's default."""
    return (f"(select coalesce(array_agg(e.item order by e.item), '{{}}') from (select "
            f"format('%%s:%%s:%%s%%s', coalesce(gr.rolname, 'PUBLIC'), a.privilege_type, "
            f"gg.rolname, case when a.is_grantable then ':grantable' else '' end) as item "
            f"from (select (aclexplode(coalesce({expr}, acldefault('{kind}', {owner})))).*) a "
            f"left join pg_roles gr on gr.oid = a.grantee "
            f"left join pg_roles gg on gg.oid = a.grantor) e)")


EXT_MEMBERS = ("not exists (select 1 from pg_depend e where e.classid = '{cat}'::regclass "
               "and e.objid = {oid} and e.deptype = 'e')")

SCHEMA = f"""
select pg_get_userbyid(n.nspowner) as owner, {acl('n.nspacl', 'n', 'n.nspowner')} as acl,
       obj_description(n.oid, 'pg_namespace') as comment
from pg_namespace n where n.nspname = %(s)s
"""

COLUMN = """json_build_object(
    'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,
    'default', case when a.attgenerated = '' then pg_get_expr(d.adbin, d.adrelid) end,
    'generated', case when a.attgenerated <> '' then pg_get_expr(d.adbin, d.adrelid) end,
    'identity', nullif(a.attidentity, ''),
    'collation', case when a.attcollation <> ty.typcollation then
        (select format('%%I.%%I', cn.nspname, co.collname) from pg_collation co
         join pg_namespace cn on cn.oid = co.collnamespace where co.oid = a.attcollation) end,
    'comment', col_description(a.attrelid, a.attnum),
    'storage', case when a.attstorage <> ty.typstorage then a.attstorage end,
    'compression', nullif(a.attcompression, ''),
    'statistics', nullif(a.attstattarget::int, -1),
    'acl', (select coalesce(array_agg(e.item order by e.item), '{}') from (
             select format('%%s:%%s', coalesce(gr.rolname, 'PUBLIC'), x.privilege_type) as item
             from (select (aclexplode(a.attacl)).*) x
             left join pg_roles gr on gr.oid = x.grantee) e))"""

# The publications a table is in (by name, FOR ALL TABLES or FOR TABLES IN SCHEMA), with what
# they publish: operations, via-root, a row filter and a column list.
PUBLICATIONS = """(select array_agg(concat_ws(' ', p.pubname,
        '(' || concat_ws(',', case when p.pubinsert then 'insert' end,
          case when p.pubupdate then 'update' end, case when p.pubdelete then 'delete' end,
          case when p.pubtruncate then 'truncate' end) || ')',
        case when p.pubviaroot then 'via root' end,
        'where ' || pg_get_expr(pr.prqual, pr.prrelid),
        'columns ' || (select string_agg(a.attname, ',' order by a.attnum) from pg_attribute a
                       where a.attrelid = c.oid and a.attnum = any(pr.prattrs)),
        case when p.puballtables then 'all tables' end,
        case when pns.pnpubid is not null then 'tables in schema' end)
        order by p.pubname)
        from pg_publication p
        left join pg_publication_rel pr on pr.prpubid = p.oid and pr.prrelid = c.oid
        left join pg_publication_namespace pns on pns.pnpubid = p.oid
             and pns.pnnspid = c.relnamespace
        where p.puballtables or pr.prrelid is not null or pns.pnpubid is not null)"""

TABLES = f"""
select c.relname as name, c.relkind as kind, pg_get_userbyid(c.relowner) as owner,
       {acl('c.relacl', 'r', 'c.relowner')} as acl, obj_description(c.oid, 'pg_class') as comment,
       c.relpersistence as persistence, c.relrowsecurity as rls_enabled,
       c.relforcerowsecurity as rls_forced, c.reloptions as options,
       case when c.relkind = 'p' then pg_get_partkeydef(c.oid) end as partition_key,
       c.relreplident as replica_identity,
       (select i.relname from pg_index x join pg_class i on i.oid = x.indexrelid
        where x.indrelid = c.oid and x.indisreplident) as replica_index,
       (select am.amname from pg_am am where am.oid = c.relam) as access_method,
       {PUBLICATIONS} as publications,
       case when c.relispartition then pg_get_expr(c.relpartbound, c.oid) end as partition_bound,
       (select array_agg(e.parent order by e.parent) from (select format('%%I.%%I',
        pn.nspname, p.relname) as parent from pg_inherits i join pg_class p on p.oid =
        i.inhparent join pg_namespace pn on pn.oid = p.relnamespace where i.inhrelid = c.oid) e)
           as parents,
       (select coalesce(json_agg({COLUMN} order by a.attnum), '[]') from pg_attribute a
        join pg_type ty on ty.oid = a.atttypid
        left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as columns
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %(s)s and c.relkind in ('r', 'p', 'f')
  and {EXT_MEMBERS.format(cat='pg_class', oid='c.oid')}
"""

CONSTRAINTS = """
select r.relname as "table", k.conname as name, k.contype as type,
       pg_get_constraintdef(k.oid) as definition, k.condeferrable as deferrable,
       k.condeferred as deferred, k.convalidated as validated,
       obj_description(k.oid, 'pg_constraint') as comment
from pg_constraint k join pg_class r on r.oid = k.conrelid
join pg_namespace n on n.oid = r.relnamespace
where n.nspname = %(s)s and k.contype <> 'n'
"""

INDEXES = """
select t.relname as "table", i.relname as name, pg_get_indexdef(x.indexrelid) as definition,
       x.indisunique as is_unique, x.indisprimary as is_primary,
       x.indisclustered as clustered,
       pg_get_expr(x.indpred, x.indrelid) as predicate,
       obj_description(i.oid, 'pg_class') as comment
from pg_index x join pg_class i on i.oid = x.indexrelid join pg_class t on t.oid = x.indrelid
join pg_namespace n on n.oid = t.relnamespace
where n.nspname = %(s)s
"""

VIEWS = f"""
select c.relname as name, c.relkind as kind, pg_get_viewdef(c.oid) as definition,
       pg_get_userbyid(c.relowner) as owner, {acl('c.relacl', 'r', 'c.relowner')} as acl,
       obj_description(c.oid, 'pg_class') as comment, c.reloptions as options,
       case when c.relkind = 'm' then c.relispopulated end as populated,
       (select array_agg(format('%%s %%s', a.attname, format_type(a.atttypid, a.atttypmod))
                         order by a.attnum) from pg_attribute a
        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as columns
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %(s)s and c.relkind in ('v', 'm')
  and {EXT_MEMBERS.format(cat='pg_class', oid='c.oid')}
"""

FUNCTIONS = f"""
select p.proname as name, pg_get_function_identity_arguments(p.oid) as arguments,
       p.prokind as kind, pg_get_function_result(p.oid) as result, l.lanname as language,
       case when p.prosqlbody is not null then pg_get_function_sqlbody(p.oid) else p.prosrc end
           as body,
       p.provolatile as volatility, p.proisstrict as strict, p.prosecdef as security_definer,
       p.proleakproof as leakproof, p.proparallel as parallel, p.proconfig as settings,
       p.procost as cost, p.prorows as rows, pg_get_userbyid(p.proowner) as owner,
       {acl('p.proacl', 'f', 'p.proowner')} as acl,
       obj_description(p.oid, 'pg_proc') as comment
from pg_proc p join pg_namespace n on n.oid = p.pronamespace
join pg_language l on l.oid = p.prolang
where n.nspname = %(s)s and {EXT_MEMBERS.format(cat='pg_proc', oid='p.oid')}
"""

TRIGGERS = """
select c.relname as "table", t.tgname as name, pg_get_triggerdef(t.oid) as definition,
       t.tgenabled as enabled, obj_description(t.oid, 'pg_trigger') as comment
from pg_trigger t join pg_class c on c.oid = t.tgrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %(s)s and not t.tgisinternal
"""

POLICIES = """
select c.relname as "table", p.polname as name, p.polcmd as command,
       p.polpermissive as permissive,
       (select array_agg(e.role order by e.role) from (select coalesce(r.rolname, 'PUBLIC')
        as role from unnest(p.polroles) u(oid) left join pg_roles r on r.oid = u.oid) e) as roles,
       pg_get_expr(p.polqual, p.polrelid) as using,
       pg_get_expr(p.polwithcheck, p.polrelid) as with_check,
       obj_description(p.oid, 'pg_policy') as comment
from pg_policy p join pg_class c on c.oid = p.polrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %(s)s
"""

SEQUENCES = f"""
select c.relname as name, format_type(s.seqtypid, null) as type, s.seqstart as start,
       s.seqincrement as increment, s.seqmin as min, s.seqmax as max, s.seqcache as cache,
       s.seqcycle as cycle, pg_get_userbyid(c.relowner) as owner,
       {acl('c.relacl', 's', 'c.relowner')} as acl, obj_description(c.oid, 'pg_class') as comment,
       (select format('%%I.%%I.%%I', tn.nspname, t.relname, a.attname) from pg_depend d
        join pg_class t on t.oid = d.refobjid join pg_namespace tn on tn.oid = t.relnamespace
        join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
        where d.classid = 'pg_class'::regclass and d.objid = c.oid
          and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')) as owned_by
from pg_class c join pg_sequence s on s.seqrelid = c.oid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %(s)s and {EXT_MEMBERS.format(cat='pg_class', oid='c.oid')}
"""

TYPES = f"""
select t.typname as name, t.typtype as kind, pg_get_userbyid(t.typowner) as owner,
       {acl('t.typacl', 'T', 't.typowner')} as acl, obj_description(t.oid, 'pg_type') as comment,
       case when t.typtype = 'e' then (select array_agg(e.enumlabel order by e.enumsortorder)
            from pg_enum e where e.enumtypid = t.oid) end as labels,
       case when t.typtype = 'd' then format_type(t.typbasetype, t.typtypmod) end as base_type,
       case when t.typtype = 'd' then t.typnotnull end as not_null,
       t.typdefault as "default",
       case when t.typtype = 'd' then (select array_agg(format('%%s %%s', k.conname,
            pg_get_constraintdef(k.oid)) order by k.conname) from pg_constraint k
            where k.contypid = t.oid) end as constraints,
       case when t.typtype = 'c' then (select array_agg(format('%%s %%s', a.attname,
            format_type(a.atttypid, a.atttypmod)) order by a.attnum) from pg_attribute a
            where a.attrelid = t.typrelid and a.attnum > 0 and not a.attisdropped) end
           as attributes,
       case when t.typtype = 'r' then (select format_type(r.rngsubtype, null) from pg_range r
            where r.rngtypid = t.oid) end as range_subtype
from pg_type t join pg_namespace n on n.oid = t.typnamespace
where n.nspname = %(s)s and t.typtype in ('e', 'd', 'c', 'r')
  and (t.typtype <> 'c' or (select c.relkind from pg_class c where c.oid = t.typrelid) = 'c')
  and {EXT_MEMBERS.format(cat='pg_type', oid='t.oid')}
"""

RULES = """
select c.relname as "table", r.rulename as name, pg_get_ruledef(r.oid) as definition,
       r.ev_enabled as enabled
from pg_rewrite r join pg_class c on c.oid = r.ev_class
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %(s)s and r.rulename <> '_RETURN'
"""

STATISTICS = """
select s.stxname as name, pg_get_statisticsobjdef(s.oid) as definition
from pg_statistic_ext s join pg_namespace n on n.oid = s.stxnamespace where n.nspname = %(s)s
"""

DEFAULT_ACLS = """
select pg_get_userbyid(d.defaclrole) as role, d.defaclobjtype as objtype,
       (select array_agg(x::text order by x::text) from unnest(d.defaclacl) x) as acl
from pg_default_acl d join pg_namespace n on n.oid = d.defaclnamespace where n.nspname = %(s)s
"""

EXTENSIONS = """
select distinct x.extname as name, x.extversion as version, xn.nspname as installed_in
from pg_depend d
join pg_depend m on m.classid = d.refclassid and m.objid = d.refobjid and m.deptype = 'e'
join pg_extension x on x.oid = m.refobjid
join pg_namespace xn on xn.oid = x.extnamespace
where (d.classid = 'pg_class'::regclass
       and d.objid in (select oid from pg_class where relnamespace = %(s)s::regnamespace))
   or (d.classid = 'pg_type'::regclass
       and d.objid in (select oid from pg_type where typnamespace = %(s)s::regnamespace))
   or (d.classid = 'pg_proc'::regclass
       and d.objid in (select oid from pg_proc where pronamespace = %(s)s::regnamespace))
   or (d.classid = 'pg_constraint'::regclass
       and d.objid in (select k.oid from pg_constraint k join pg_class c on c.oid = k.conrelid
                       where c.relnamespace = %(s)s::regnamespace))
union
select x.extname, x.extversion, xn.nspname from pg_extension x
join pg_namespace xn on xn.oid = x.extnamespace where xn.oid = %(s)s::regnamespace
"""

# Objects of the whole database, in no schema: event triggers (tags sorted: their order says
# nothing; NULL is every command). Extension members are left out, as in a schema.
EVENT_TRIGGERS = f"""
select v.evtname as name, v.evtevent as event,
       (select array_agg(t order by t) from unnest(v.evttags) t) as tags,
       v.evtfoid::regprocedure::text as function, v.evtenabled as enabled
from pg_event_trigger v
where {EXT_MEMBERS.format(cat='pg_event_trigger', oid='v.oid')}
"""

# What the descriptions hold, by version: a fingerprint taken before a version added a property
# (or a kind of object) is compared without it (compare.py), so older snapshots stay comparable.
CATALOG_VERSION = 3
ADDED_IN: dict[int, dict[str, tuple[str, ...]]] = {
    2: {"table": ("replica_identity", "replica_index", "access_method", "publications"),
        "view": ("populated",), "index": ("clustered",),
        "column": ("storage", "compression", "statistics")},
}
KINDS_ADDED_IN: dict[int, tuple[str, ...]] = {3: ("event_trigger",)}

# kind -> (query, key columns): an object's key is "<kind> <schema>.<key parts joined by '.'>"
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "table": (TABLES, ("name",)),
    "constraint": (CONSTRAINTS, ("table", "name")),
    "index": (INDEXES, ("name",)),
    "view": (VIEWS, ("name",)),
    "function": (FUNCTIONS, ("name", "arguments")),
    "trigger": (TRIGGERS, ("table", "name")),
    "policy": (POLICIES, ("table", "name")),
    "sequence": (SEQUENCES, ("name",)),
    "type": (TYPES, ("name",)),
    "rule": (RULES, ("table", "name")),
    "statistics": (STATISTICS, ("name",)),
    "default_acl": (DEFAULT_ACLS, ("role", "objtype")),
    "extension": (EXTENSIONS, ("name",)),
}


def object_key(kind: str, schema: str, row: dict[str, Any], parts: tuple[str, ...]) -> str:
    if kind == "function":
        return f"function {schema}.{row['name']}({row['arguments']})"
    if kind in ("extension", "default_acl"):
        return f"{kind} {'.'.join(str(row[p]) for p in parts)}"
    return f"{kind} {schema}.{'.'.join(str(row[p]) for p in parts)}"


def describe_schema(conn: psycopg.Connection[Any], schema: str) -> Objects | None:
    """Every object of `schema`, keyed by kind and name; None when the schema does not exist."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(SCHEMA, {"s": schema})
        head = cur.fetchone()
        if head is None:
            return None
        rows: dict[str, list[dict[str, Any]]] = {}
        for kind, (sql, _parts) in KINDS.items():
            cur.execute(sql, {"s": schema})
            rows[kind] = cur.fetchall()
    return objects_from(schema, head, rows)


def describe_database(conn: psycopg.Connection[Any]) -> Objects:
    """The objects of the whole database (its event triggers), keyed by kind and name."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(EVENT_TRIGGERS)
        return database_from(cur.fetchall())


def database_from(event_triggers: list[dict[str, Any]]) -> Objects:
    """The database's description from the rows of EVENT_TRIGGERS."""
    return dict(sorted((f"event_trigger {row['name']}", _clean(row)) for row in event_triggers))


def objects_from(schema: str, head: dict[str, Any] | None,
                 rows: dict[str, list[dict[str, Any]]]) -> Objects | None:
    """A schema's description from the rows of SCHEMA and of each of KINDS' queries."""
    if head is None:
        return None
    objects: Objects = {f"schema {schema}": _clean(head)}
    for kind, (_sql, parts) in KINDS.items():
        for row in rows.get(kind, []):
            objects[object_key(kind, schema, row, parts)] = _clean(row)
    return dict(sorted(objects.items()))


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly values: numbers as numbers, arrays as lists, nothing else."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif value is not None and not isinstance(value, str | int | bool | list | dict | float):
            value = str(value)
        out[key] = value
    return out
