"""The catalog queries that plan a content scan: which tables, their size, their columns and
how each column is hashed (kept apart from the scan so that the endpoint reader in by_query.py
sends the very same text)."""

# Types whose hash is computed from OIDs that a dump and restore renumbers: enum labels are
# stored and hashed as pg_enum OIDs; reg* and oid values are OIDs. Columns of such types (also
# through domains, arrays and composites) are hashed through their text form; everything else
# is hashed as stored, which is faster. Evaluated once per distinct column type (`t.atttypid`).
OID_HASHED = """exists (
    with recursive base(oid) as (
        select t.atttypid
        union all
        select coalesce(nullif(ty.typbasetype, 0), nullif(ty.typelem, 0))
        from base b join pg_type ty on ty.oid = b.oid
        where ty.typtype = 'd' or (ty.typlen = -1 and ty.typelem <> 0))
    select 1 from base b join pg_type ty on ty.oid = b.oid
    where ty.typtype in ('e', 'c')
       or ty.typname in ('oid', 'regclass', 'regtype', 'regproc', 'regprocedure', 'regoper',
                         'regoperator', 'regconfig', 'regdictionary', 'regnamespace', 'regrole',
                         'regcollation'))"""

# A column whose default is the time of the write (now(), CURRENT_TIMESTAMP, clock_timestamp(),
# ... possibly inside timezone()): its newest value is the table's newest change.
NOW_LIKE = ("'\\m(now|current_timestamp|localtimestamp|clock_timestamp|statement_timestamp|"
            "transaction_timestamp)\\M'")

# Each catalog lookup is made once per distinct column type, not once per column: both queries
# plan every content scan, before its first row is read (45 and 27 ms -> 7 and 9 ms on the
# reference database).
TABLES_SQL = f"""
with rels as (
    select c.oid, n.nspname, c.relname, c.reltablespace
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = any(%s) and c.relkind = 'r'),
cols as (
    select a.attrelid, a.attnum, a.attname::text as attname, a.atttypid
    from pg_attribute a join rels r on r.oid = a.attrelid
    where a.attnum > 0 and not a.attisdropped),
by_text as (
    select t.atttypid from (select distinct atttypid from cols) t where {OID_HASHED})
select r.nspname, r.relname,
       (pg_relation_size(r.oid) / current_setting('block_size')::int)::bigint,
       has_table_privilege(r.oid, 'SELECT'),
       (select array_agg(a.attname order by a.attnum) from cols a
        where a.attrelid = r.oid) as columns,
       (select array_agg(a.attname order by a.attnum) from cols a
        where a.attrelid = r.oid and a.atttypid in (select atttypid from by_text))
        as text_columns,
       format('%%s/%%s/%%s', coalesce(nullif(r.reltablespace, 0), 1663),
              (select oid from pg_database where datname = current_database()),
              pg_relation_filenode(r.oid)) as locator,
       (select array_agg(a.attname::text order by a.attnum) from pg_attribute a
        join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where a.attrelid = r.oid and a.attnum > 0 and not a.attisdropped
          and a.atttypid in ('timestamptz'::regtype, 'timestamp'::regtype)
          and pg_get_expr(d.adbin, d.adrelid) ~* {NOW_LIKE}) as stamped
from rels r
order by 1, 2
"""


COLUMN_HASHES_SQL = """
with cols as (
    select n.nspname, c.relname, a.attname::text as attname, a.attnum, a.atttypid
    from pg_attribute a
    join pg_class c on c.oid = a.attrelid
    join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = any(%s) and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped),
-- every default hash operator class with its extended hash function, read once
procs as materialized (
    -- the argument type by its qualified name: format_type() says "character" or "bit",
    -- which as a cast means char(1) or bit(1) and would truncate the value before hashing.
    -- It is the function's declared argument, which may differ from the opclass's type when
    -- the two are binary-equal: before PostgreSQL 17, timestamptz is hashed by
    -- timestamp_hash_extended(timestamp), and the cast is exact in the scan's UTC session
    select oc.opcintype, oc.opcname, p.amproc::regproc::text as fn,
           quote_ident(an.nspname) || '.' || quote_ident(at.typname) as argtype
    from pg_opclass oc
    join pg_amproc p on p.amprocfamily = oc.opcfamily and p.amprocnum = 2
        and p.amproclefttype = oc.opcintype and p.amprocrighttype = oc.opcintype
    join pg_proc fp on fp.oid = p.amproc
    join pg_type at on at.oid = fp.proargtypes[0]
    join pg_namespace an on an.oid = at.typnamespace
    where oc.opcdefault and oc.opcmethod = (select oid from pg_am where amname = 'hash')),
-- the one each column type (a domain: its base type) is hashed with
hashes as (
    select t.atttypid, h.fn, h.argtype
    from (select distinct atttypid from cols) t
    left join lateral (
        with recursive base(oid, depth) as (
            select t.atttypid, 0
            union all
            select ty.typbasetype, b.depth + 1 from base b join pg_type ty on ty.oid = b.oid
            where ty.typtype = 'd')
        select pr.fn, pr.argtype
        from (select oid from base order by depth desc limit 1) bt
        join pg_type ty on ty.oid = bt.oid
        join procs pr on pr.opcintype = ty.oid
           or exists (select 1 from pg_cast k where k.castsource = ty.oid
                      and k.casttarget = pr.opcintype and k.castmethod = 'b')
           or (pr.opcintype = 'anyarray'::regtype and ty.typcategory = 'A')
           or (pr.opcintype = 'anyrange'::regtype and ty.typtype = 'r')
        order by (pr.opcintype = ty.oid) desc, (pr.opcintype = 'text'::regtype) desc,
                 pr.opcname
        limit 1) h on true)
select cols.nspname, cols.relname, cols.attname, h.fn, h.argtype
from cols join hashes h on h.atttypid = cols.atttypid
order by 1, 2, cols.attnum
"""
