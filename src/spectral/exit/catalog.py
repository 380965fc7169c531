"""The catalog queries of the portability report (portability.py): what objects in the
protected schemas depend on, the roles their privileges and policies name, their owners,
publications, event triggers, function bodies, extensions, the catalog functions they call, and
the catalog features a major version introduced. `%(s)s` is the list of protected schemas."""

from __future__ import annotations

DEPENDENCIES_SQL = """
with deps as (
  select d.classid, d.objid, d.refclassid, d.refobjid, d.refobjsubid,
         case d.classid
           when 'pg_class'::regclass then d.objid
           when 'pg_attrdef'::regclass then (select adrelid from pg_attrdef where oid = d.objid)
           when 'pg_policy'::regclass then (select polrelid from pg_policy where oid = d.objid)
           when 'pg_trigger'::regclass then (select tgrelid from pg_trigger where oid = d.objid)
           when 'pg_rewrite'::regclass then (select ev_class from pg_rewrite where oid = d.objid)
           when 'pg_constraint'::regclass then
             (select nullif(conrelid, 0) from pg_constraint where oid = d.objid)
         end as owning_rel,
         case d.refclassid when 'pg_class'::regclass then
           coalesce((select indrelid from pg_index where indexrelid = d.refobjid), d.refobjid)
         end as ref_rel
  from pg_depend d
  where d.deptype in ('n', 'a') and d.refclassid <> 'pg_namespace'::regclass
)
select distinct
       coalesce((select relnamespace::regnamespace::text from pg_class
                 where oid = deps.owning_rel), dep.schema) as dep_schema,
       dep.type as dep_type, dep.identity as dep_identity,
       coalesce((select relnamespace::regnamespace::text from pg_class
                 where oid = deps.ref_rel), ref.schema) as ref_schema,
       case when deps.ref_rel is not null then
         (select case relkind when 'r' then 'table' when 'v' then 'view'
                 when 'm' then 'materialized view' when 'p' then 'table' else 'relation' end
          from pg_class where oid = deps.ref_rel) else ref.type end as ref_type,
       case when deps.ref_rel is not null then deps.ref_rel::regclass::text
            when deps.refclassid = 'pg_proc'::regclass then deps.refobjid::regprocedure::text
            else ref.identity end as ref_identity,
       (select x.extname from pg_depend e join pg_extension x on x.oid = e.refobjid
        where e.classid = deps.refclassid and e.objid = deps.refobjid and e.deptype = 'e'
        limit 1) as extension,
       (select a.attname::text from pg_attribute a where deps.refclassid = 'pg_class'::regclass
        and deps.refobjsubid > 0 and a.attrelid = deps.refobjid
        and a.attnum = deps.refobjsubid) as ref_column
from deps
cross join lateral pg_identify_object(deps.classid, deps.objid, 0) dep
cross join lateral pg_identify_object(deps.refclassid, deps.refobjid, 0) ref
order by 1, 2, 3, 4, 5, 6, 7, 8
"""

ROLES_SQL = """
with acls as (
  select c.relnamespace as ns, format('%%s %%s', case c.relkind when 'S' then 'sequence'
         when 'v' then 'view' when 'm' then 'materialized view' else 'table' end,
         c.oid::regclass) as obj, c.relacl as acl from pg_class c
  union all select p.pronamespace, 'function ' || p.oid::regprocedure, p.proacl from pg_proc p
  union all select t.typnamespace, 'type ' || t.oid::regtype, t.typacl from pg_type t
  union all select n.oid, 'schema ' || quote_ident(n.nspname), n.nspacl from pg_namespace n
  union all select c.relnamespace, format('column %%s.%%I', c.oid::regclass, a.attname),
                   a.attacl from pg_attribute a join pg_class c on c.oid = a.attrelid
            where a.attacl is not null
)
select r.rolname, 'privileges on ' || acls.obj, x.privilege_type
from acls cross join lateral aclexplode(acls.acl) x
join pg_roles r on r.oid = x.grantee
where acls.ns::regnamespace::text = any(%(s)s) and acls.acl is not null
union all
select r.rolname, format('policy %%I on %%s', p.polname, p.polrelid::regclass), null
from pg_policy p join pg_class c on c.oid = p.polrelid
cross join lateral unnest(p.polroles) pr(oid) join pg_roles r on r.oid = pr.oid
where c.relnamespace::regnamespace::text = any(%(s)s)
order by 1, 2, 3
"""

OWNERS_SQL = """
select distinct pg_get_userbyid(o.owner) from (
  select relowner as owner, relnamespace as ns from pg_class
  union all select proowner, pronamespace from pg_proc
  union all select typowner, typnamespace from pg_type
  union all select nspowner, oid from pg_namespace) o
where o.ns::regnamespace::text = any(%(s)s) order by 1
"""

ROLE_ATTRS_SQL = """
select rolname, rolsuper, rolbypassrls, rolcanlogin from pg_roles where rolname = any(%(r)s)
"""

PUBLICATIONS_SQL = """
select p.pubname, coalesce(string_agg(distinct t.schemaname || '.' || t.tablename, ', '), '')
from pg_publication p
left join pg_publication_tables t on t.pubname = p.pubname and t.schemaname = any(%(s)s)
group by p.pubname, p.puballtables
having p.puballtables or count(t.tablename) > 0 order by 1
"""

EVENT_TRIGGERS_SQL = """
select e.evtname, e.evtevent, e.evtfoid::regprocedure::text from pg_event_trigger e order by 1
"""

BODIES_SQL = """
select p.oid::regprocedure::text, p.prosrc from pg_proc p
where p.pronamespace::regnamespace::text = any(%(s)s)
  and p.prolang <> (select oid from pg_language where lanname = 'c')
"""

EXTENSIONS_SQL = """
select x.extname, x.extversion, x.extnamespace::regnamespace::text from pg_extension x
"""

CATALOG_FUNCTIONS_SQL = """
select distinct d.refobjid::regprocedure::text
from pg_depend d join pg_proc p on p.oid = d.refobjid
where d.refclassid = 'pg_proc'::regclass and p.pronamespace = 'pg_catalog'::regnamespace
  and d.classid in ('pg_class'::regclass, 'pg_attrdef'::regclass, 'pg_policy'::regclass,
                    'pg_rewrite'::regclass, 'pg_constraint'::regclass, 'pg_trigger'::regclass,
                    'pg_proc'::regclass)
  and coalesce(
        (select relnamespace from pg_class where oid = d.objid
         and d.classid = 'pg_class'::regclass),
        (select c.relnamespace from pg_attrdef a join pg_class c on c.oid = a.adrelid
         where a.oid = d.objid and d.classid = 'pg_attrdef'::regclass),
        (select c.relnamespace from pg_policy a join pg_class c on c.oid = a.polrelid
         where a.oid = d.objid and d.classid = 'pg_policy'::regclass),
        (select c.relnamespace from pg_rewrite a join pg_class c on c.oid = a.ev_class
         where a.oid = d.objid and d.classid = 'pg_rewrite'::regclass),
        (select connamespace from pg_constraint where oid = d.objid
         and d.classid = 'pg_constraint'::regclass),
        (select c.relnamespace from pg_trigger a join pg_class c on c.oid = a.tgrelid
         where a.oid = d.objid and d.classid = 'pg_trigger'::regclass),
        (select pronamespace from pg_proc where oid = d.objid and d.classid = 'pg_proc'::regclass)
      )::regnamespace::text = any(%(s)s)
order by 1
"""

# Catalog features a major version introduced: (since, what, detecting query on the source).
FEATURES: tuple[tuple[int, str, str], ...] = (
    (18, "virtual generated column (PostgreSQL 18)",
     "select format('%%s.%%I', a.attrelid::regclass, a.attname) from pg_attribute a "
     "join pg_class c on c.oid = a.attrelid where a.attgenerated = 'v' "
     "and c.relnamespace::regnamespace::text = any(%(s)s)"),
    (18, "temporal key WITHOUT OVERLAPS (PostgreSQL 18)",
     "select format('%%I on %%s', conname, conrelid::regclass) from pg_constraint "
     "where conperiod and connamespace::regnamespace::text = any(%(s)s)"),
    (18, "NOT NULL constraint NOT VALID (PostgreSQL 18)",
     "select format('%%I on %%s', conname, conrelid::regclass) from pg_constraint "
     "where contype = 'n' and not convalidated "
     "and connamespace::regnamespace::text = any(%(s)s)"),
    (15, "unique constraint NULLS NOT DISTINCT (PostgreSQL 15)",
     "select i.indexrelid::regclass::text from pg_index i join pg_class c on c.oid = i.indrelid "
     "where i.indnullsnotdistinct and c.relnamespace::regnamespace::text = any(%(s)s)"),
)

# default privileges (ALTER DEFAULT PRIVILEGES ... IN SCHEMA) of the moved schemas: pg_dump
# writes them FOR ROLE their role, which the target's user is rarely a member of
DEFAULT_ACLS_SQL = """
select pg_get_userbyid(d.defaclrole), d.defaclobjtype::text, n.nspname
from pg_default_acl d join pg_namespace n on n.oid = d.defaclnamespace
where n.nspname = any(%(s)s) order by 1, 2, 3
"""

# objects outside the moved schemas that depend on objects in them (PostgreSQL records these):
# a trigger on a managed table running a protected function (Supabase's on_auth_user_created),
# a foreign key, a view or a policy outside referring inwards. They stay behind.
REVERSE_SQL = """
with moved as (select oid from pg_namespace where nspname = any(%(s)s)),
     outside as (select oid from pg_namespace where nspname <> all(%(s)s)
                 and nspname not in ('pg_catalog', 'information_schema', 'pg_toast')
                 and nspname not like 'pg\\_%%')
select 'trigger', format('%%I on %%s', t.tgname, t.tgrelid::regclass), t.tgrelid::regclass::text,
       'runs ' || t.tgfoid::regprocedure::text
from pg_trigger t join pg_class c on c.oid = t.tgrelid join pg_proc p on p.oid = t.tgfoid
where not t.tgisinternal and p.pronamespace in (select oid from moved)
  and c.relnamespace in (select oid from outside)
union all
select 'foreign key', format('%%I on %%s', k.conname, k.conrelid::regclass),
       k.conrelid::regclass::text, 'refers to ' || k.confrelid::regclass::text
from pg_constraint k join pg_class c on c.oid = k.conrelid join pg_class r on r.oid = k.confrelid
where k.contype = 'f' and r.relnamespace in (select oid from moved)
  and c.relnamespace in (select oid from outside)
union all
select distinct case v.relkind when 'm' then 'materialized view' else 'view' end,
       v.oid::regclass::text, v.oid::regclass::text, 'reads ' || t.oid::regclass::text
from pg_depend d join pg_rewrite w on d.classid = 'pg_rewrite'::regclass and w.oid = d.objid
join pg_class v on v.oid = w.ev_class
join pg_class t on d.refclassid = 'pg_class'::regclass and t.oid = d.refobjid
where t.relnamespace in (select oid from moved) and v.relnamespace in (select oid from outside)
union all
select distinct 'policy', format('%%I on %%s', pol.polname, pol.polrelid::regclass),
       pol.polrelid::regclass::text, 'uses ' || coalesce(
         (select p.oid::regprocedure::text from pg_proc p
          where d.refclassid = 'pg_proc'::regclass and p.oid = d.refobjid),
         (select r.oid::regclass::text from pg_class r
          where d.refclassid = 'pg_class'::regclass and r.oid = d.refobjid))
from pg_depend d join pg_policy pol on d.classid = 'pg_policy'::regclass and pol.oid = d.objid
join pg_class c on c.oid = pol.polrelid
where c.relnamespace in (select oid from outside)
  and ((d.refclassid = 'pg_proc'::regclass and d.refobjid in
        (select oid from pg_proc where pronamespace in (select oid from moved)))
    or (d.refclassid = 'pg_class'::regclass and d.refobjid in
        (select oid from pg_class where relnamespace in (select oid from moved))))
order by 1, 2
"""

# the members of the roles the exit creates (PostgREST's `authenticator` logs in and SETs ROLE
# to anon, authenticated, service_role): their memberships are planned with them
MEMBERS_SQL = """
select r.rolname, m.rolname, m.rolcanlogin, m.rolinherit
from pg_auth_members a join pg_roles r on r.oid = a.roleid join pg_roles m on m.oid = a.member
where r.rolname = any(%(r)s) and not m.rolsuper and m.rolname not like 'pg\\_%%'
order by 2, 1
"""

# the extension an object named in a function body belongs to (`extensions.similarity` is
# pg_trgm's): planned as that extension, not as a managed schema's object
EXT_MEMBER_SQL = """
select e.extname from pg_depend d join pg_extension e on e.oid = d.refobjid
where d.deptype = 'e' and d.refclassid = 'pg_extension'::regclass and (
  (d.classid = 'pg_proc'::regclass and d.objid in (select oid from pg_proc
    where pronamespace = to_regnamespace(%(schema)s) and proname = %(name)s))
  or (d.classid = 'pg_class'::regclass and d.objid in (select oid from pg_class
    where relnamespace = to_regnamespace(%(schema)s) and relname = %(name)s))
  or (d.classid = 'pg_type'::regclass and d.objid in (select oid from pg_type
    where typnamespace = to_regnamespace(%(schema)s) and typname = %(name)s)))
limit 1
"""
