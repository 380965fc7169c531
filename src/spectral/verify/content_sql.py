"""The catalog queries that plan a content scan: which tables, their size, their columns and
how each column is hashed (kept apart from the scan so that the endpoint reader in by_query.py
sends the very same text)."""

# Types whose hash is computed from OIDs that a dump and restore renumbers: enum labels are
# stored and hashed as pg_enum OIDs; reg* and oid values are OIDs. Columns of such types (also
# through domains, arrays and composites) are hashed through their text form; everything else
# is hashed as stored, which is faster.
OID_HASHED = """exists (
    with recursive base(oid) as (
        select a.atttypid
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

TABLES_SQL = f"""
select n.nspname, c.relname, (pg_relation_size(c.oid) / current_setting('block_size')::int)::bigint,
       has_table_privilege(c.oid, 'SELECT'),
       (select array_agg(a.attname::text order by a.attnum) from pg_attribute a
        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as columns,
       (select array_agg(a.attname::text order by a.attnum) from pg_attribute a
        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
          and {OID_HASHED}) as text_columns,
       format('%%s/%%s/%%s', coalesce(nullif(c.reltablespace, 0), 1663),
              (select oid from pg_database where datname = current_database()),
              pg_relation_filenode(c.oid)) as locator,
       (select array_agg(a.attname::text order by a.attnum) from pg_attribute a
        join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
          and a.atttypid in ('timestamptz'::regtype, 'timestamp'::regtype)
          and pg_get_expr(d.adbin, d.adrelid) ~* {NOW_LIKE}) as stamped
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = any(%s) and c.relkind = 'r'
order by 1, 2
"""


COLUMN_HASHES_SQL = """
select n.nspname, c.relname, a.attname::text, h.fn, h.argtype
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
left join lateral (
    with recursive base(oid, depth) as (
        select a.atttypid, 0
        union all
        select ty.typbasetype, b.depth + 1 from base b join pg_type ty on ty.oid = b.oid
        where ty.typtype = 'd')
    -- the argument type by its qualified name: format_type() says "character" or "bit",
    -- which as a cast means char(1) or bit(1) and would truncate the value before hashing.
    -- It is the function's declared argument, which may differ from the opclass's type when
    -- the two are binary-equal: before PostgreSQL 17, timestamptz is hashed by
    -- timestamp_hash_extended(timestamp), and the cast is exact in the scan's UTC session
    select p.amproc::regproc::text as fn,
           quote_ident(an.nspname) || '.' || quote_ident(at.typname) as argtype
    from (select oid from base order by depth desc limit 1) bt
    join pg_type ty on ty.oid = bt.oid
    join pg_opclass oc on oc.opcdefault
        and oc.opcmethod = (select oid from pg_am where amname = 'hash')
    join pg_amproc p on p.amprocfamily = oc.opcfamily and p.amprocnum = 2
        and p.amproclefttype = oc.opcintype and p.amprocrighttype = oc.opcintype
    join pg_proc fp on fp.oid = p.amproc
    join pg_type at on at.oid = fp.proargtypes[0]
    join pg_namespace an on an.oid = at.typnamespace
    where oc.opcintype = ty.oid
       or exists (select 1 from pg_cast k where k.castsource = ty.oid
                  and k.casttarget = oc.opcintype and k.castmethod = 'b')
       or (oc.opcintype = 'anyarray'::regtype and ty.typcategory = 'A')
       or (oc.opcintype = 'anyrange'::regtype and ty.typtype = 'r')
    order by (oc.opcintype = ty.oid) desc, (oc.opcintype = 'text'::regtype) desc,
             oc.opcname
    limit 1) h on true
where n.nspname = any(%s) and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped
order by 1, 2, a.attnum
"""
