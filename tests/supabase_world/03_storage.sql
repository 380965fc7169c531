-- The storage schema as Supabase Storage leaves it, reduced to buckets, objects and the path
-- functions policies use. Written for spectral's tests from FACTS (owners, columns, keys,
-- functions' behaviour, RLS, grants, default privileges) in
--   github.com/supabase/postgres @ 7db7e1a9e34b9ffb9b0e3372ccf08eb4fa772f4b (The PostgreSQL
--   License): migrations/db/init-scripts/00000000000002-storage-schema.sql,
--   migrations/db/migrations/10000000000000_demote-postgres.sql;
--   github.com/supabase/storage @ 4fa61fba9371c4bd40cbb81509f07bcb3af21683 (Apache License
--   2.0): migrations/tenant/0002-storage-schema.sql, 0003-pathtoken-column, 0004-add-migrations-
--   rls, 0007-add-rls-to-buckets, 0008-add-public-to-buckets, 0011-add-trigger-to-auto-update-
--   updated_at-column, 0013-add-bucket-custom-limits, 0016-add-version, 0017-drop-owner-
--   foreign-key, 0018-add_owner_id_column_deprecate_owner, 0025-custom-metadata,
--   0046-buckets-objects-grants, 0060-optimize-existing-functions-again (.sql).
-- Not a copy: fewer tables and columns, the same owners, keys, grants and function behaviour.
-- Run by the bootstrap superuser after 02_auth.sql.

set role supabase_admin;
create schema storage authorization supabase_admin;
grant usage on schema storage to postgres, anon, authenticated, service_role;
grant all on schema storage to supabase_storage_admin;   -- the owner role is also a grantee
grant all on schema storage to dashboard_user, postgres;
alter default privileges in schema storage
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges in schema storage
  grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges in schema storage
  grant all on sequences to postgres, anon, authenticated, service_role;
reset role;

-- the storage server logs in as supabase_storage_admin and runs its migrations
set role supabase_storage_admin;
alter default privileges in schema storage
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges in schema storage
  grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges in schema storage
  grant all on sequences to postgres, anon, authenticated, service_role;

create table storage.migrations (
  id integer primary key,
  name varchar(100) unique not null,
  hash varchar(40) not null,
  executed_at timestamp default current_timestamp
);
insert into storage.migrations (id, name, hash)
  select n, m, md5(m) from (values (0, 'create-migrations-table'), (1, 'initialmigration'))
    as v (n, m);

create table storage.buckets (
  id text not null primary key,
  name text not null,
  owner uuid,                         -- no foreign key to auth.users since 0018
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  public boolean default false,
  file_size_limit bigint,
  allowed_mime_types text[],
  owner_id text
);
create unique index bname on storage.buckets (name);
comment on column storage.buckets.owner is 'Field is deprecated, use owner_id instead';

create table storage.objects (
  id uuid not null default gen_random_uuid() primary key,
  bucket_id text references storage.buckets (id),
  name text,
  owner uuid,                         -- no foreign key to auth.users since 0017
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  last_accessed_at timestamptz default now(),
  metadata jsonb,
  path_tokens text[] generated always as (string_to_array(name, '/')) stored,
  version text,
  owner_id text,
  user_metadata jsonb
);
create unique index bucketid_objname on storage.objects (bucket_id, name);
create index name_prefix_search on storage.objects (name text_pattern_ops);
comment on column storage.objects.owner is 'Field is deprecated, use owner_id instead';

alter table storage.migrations enable row level security;
alter table storage.buckets enable row level security;
alter table storage.objects enable row level security;

-- 'a/b/c.pdf': foldername {a,b}, filename c.pdf, extension pdf
create function storage.foldername(name text) returns text[] language sql immutable as $$
  select p[1:array_length(p, 1) - 1] from string_to_array(name, '/') as p
$$;
create function storage.filename(name text) returns text language sql immutable as $$
  select p[array_length(p, 1)] from string_to_array(name, '/') as p
$$;
create function storage.extension(name text) returns text language sql immutable as $$
  select reverse(split_part(reverse(storage.filename(name)), '.', 1))
$$;

create function storage.update_updated_at_column() returns trigger language plpgsql as $$
begin
  new.updated_at := now();
  return new;
end $$;
create trigger update_objects_updated_at before update on storage.objects
  for each row execute function storage.update_updated_at_column();

grant all on storage.buckets, storage.objects to postgres with grant option;
grant all on storage.buckets, storage.objects to service_role, authenticated, anon;

reset role;
