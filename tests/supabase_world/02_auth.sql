-- The auth schema as Supabase Auth (GoTrue) leaves it, reduced to the tables that hold users.
-- Written for spectral's tests from FACTS (owners, columns, keys, functions' behaviour, RLS,
-- grants) in
--   github.com/supabase/postgres @ 7db7e1a9e34b9ffb9b0e3372ccf08eb4fa772f4b (The PostgreSQL
--   License): migrations/db/init-scripts/00000000000001-auth-schema.sql,
--   migrations/db/migrations/20211115181400_update-auth-permissions.sql,
--   .../20211124212715_update-auth-owner.sql, .../10000000000000_demote-postgres.sql;
--   github.com/supabase/auth @ bc32168e13fdc928c98b449fc76bc3fdb9a293c5 (MIT License):
--   migrations/00_init_auth_schema.up.sql, 20210710035447_alter_users, 20210722035447_adds_
--   confirmed_at, 20210909172000_create_identities_table, 20220224000811_update_auth_functions,
--   20220531120530_add_auth_jwt_function, 20220811173540_add_sessions_table,
--   20221215195800_add_identities_email_column, 20231117164230_add_id_pkey_identities,
--   20240214120130_add_is_anonymous_column, 20240612123726_enable_rls_update_grants (.up.sql).
-- Not a copy: fewer tables and columns, the same owners, keys, grants and function behaviour.
-- Run by the bootstrap superuser after 01_image.sql.

set role supabase_admin;
create schema auth authorization supabase_admin;
grant usage on schema auth to anon, authenticated, service_role;
grant all on schema auth to supabase_auth_admin;       -- the owner role is also a grantee
grant all on schema auth to dashboard_user, postgres;
reset role;

-- whatever the auth server creates is granted to postgres and dashboard_user
alter default privileges for role supabase_auth_admin in schema auth
  grant all on tables to postgres, dashboard_user;
alter default privileges for role supabase_auth_admin in schema auth
  grant all on sequences to postgres, dashboard_user;
alter default privileges for role supabase_auth_admin in schema auth
  grant all on routines to postgres, dashboard_user;

-- the auth server logs in as supabase_auth_admin and runs its migrations
set role supabase_auth_admin;

create table auth.users (
  instance_id uuid,
  id uuid not null primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  invited_at timestamptz,
  confirmation_token varchar(255),
  recovery_token varchar(255),
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_super_admin boolean,
  created_at timestamptz,
  updated_at timestamptz,
  phone text unique default null,
  phone_confirmed_at timestamptz,
  confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at))
    stored,
  banned_until timestamptz,
  is_sso_user boolean not null default false,
  deleted_at timestamptz,
  is_anonymous boolean not null default false
);
create unique index users_email_partial_key on auth.users (email) where is_sso_user = false;
create index users_instance_id_idx on auth.users (instance_id);
comment on table auth.users is 'Auth: Stores user login data within a secure schema.';

create table auth.identities (
  provider_id text not null,
  user_id uuid not null references auth.users (id) on delete cascade,
  identity_data jsonb not null,
  provider text not null,
  last_sign_in_at timestamptz,
  created_at timestamptz,
  updated_at timestamptz,
  email text generated always as (lower(identity_data ->> 'email')) stored,
  id uuid not null default gen_random_uuid() primary key,
  constraint identities_provider_id_provider_unique unique (provider_id, provider)
);
create index identities_user_id_idx on auth.identities (user_id);

create table auth.sessions (
  id uuid not null primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  created_at timestamptz,
  updated_at timestamptz,
  not_after timestamptz
);

create table auth.refresh_tokens (
  instance_id uuid,
  id bigserial primary key,
  token varchar(255) unique,
  user_id varchar(255),                 -- text, not a foreign key: as upstream
  revoked boolean,
  created_at timestamptz,
  updated_at timestamptz,
  parent varchar(255),
  session_id uuid references auth.sessions (id) on delete cascade
);

create table auth.audit_log_entries (
  instance_id uuid,
  id uuid not null primary key,
  payload json,
  created_at timestamptz,
  ip_address varchar(64) not null default ''
);

create table auth.instances (
  id uuid not null primary key,
  uuid uuid,
  raw_base_config text,
  created_at timestamptz,
  updated_at timestamptz
);

create table auth.schema_migrations (version varchar(255) not null primary key);
insert into auth.schema_migrations
  values ('20171026211738'), ('20220531120530'), ('20240612123726');

-- the claims PostgREST sets: request.jwt.claims (JSON, PostgREST >= 9) or, before it, one
-- setting per claim (request.jwt.claim.sub, ...); the older form wins when both are set
create function auth.uid() returns uuid language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')::uuid
$$;
create function auth.role() returns text language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                  nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
$$;
create function auth.email() returns text language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim.email', true), ''),
                  nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
$$;
create function auth.jwt() returns jsonb language sql stable as $$
  select coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb
$$;
comment on function auth.uid() is 'Deprecated. Use auth.jwt() -> ''sub'' instead.';
comment on function auth.role() is 'Deprecated. Use auth.jwt() -> ''role'' instead.';
comment on function auth.email() is 'Deprecated. Use auth.jwt() -> ''email'' instead.';

-- 2024: RLS on every auth table (no policies: only owners and BYPASSRLS roles read them), and
-- SELECT WITH GRANT OPTION for postgres on top of the ALL it holds: its privilege list is then
-- "all but SELECT" plain plus SELECT grantable, which pg_dump writes as a partial list
-- (INSERT,...,MAINTAIN,UPDATE on PostgreSQL 17+)
do $$
declare
  t regclass;
begin
  for t in select c.oid from pg_class c where c.relnamespace = 'auth'::regnamespace
                                         and c.relkind = 'r' loop
    execute format('alter table %s enable row level security', t);
    execute format('grant select on %s to postgres with grant option', t);
  end loop;
end $$;

reset role;
