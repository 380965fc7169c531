-- The Supabase Postgres image: roles, the extensions schema, API grants, default privileges and
-- the PostgREST event triggers. Written for spectral's tests from FACTS (role attributes,
-- memberships, grants, owners, trigger events) in
--   github.com/supabase/postgres @ 7db7e1a9e34b9ffb9b0e3372ccf08eb4fa772f4b
--   (licence: The PostgreSQL License), files
--   migrations/db/init-scripts/00000000000000-initial-schema.sql,
--   migrations/db/init-scripts/00000000000003-post-setup.sql,
--   migrations/db/migrations/10000000000000_demote-postgres.sql,
--   .../20220126121436_finer-postgrest-triggers.sql, .../20221103090837_revoke_admin.sql,
--   .../20220609081115_grant-supabase-auth-admin-and-supabase-storage-admin-to-postgres.sql,
--   .../20230201083204_grant_auth_roles_to_postgres.sql,
--   .../20230529180330_alter_api_roles_for_inherit.sql,
--   .../20231013070755_grant_authenticator_to_supabase_storage_admin.sql,
--   ansible/files/pgbouncer_config/pgbouncer_auth_schema.sql.
-- Not a copy: the net effect of those migrations, in fewer statements.
-- Differences, on purpose: `postgres` is the bootstrap superuser of a test cluster and cannot
-- be demoted (upstream: NOSUPERUSER CREATEDB CREATEROLE LOGIN REPLICATION BYPASSRLS); pgjwt,
-- pg_net, pg_cron, pgsodium, pg_graphql are not installed; uuid-ossp and pgcrypto only where
-- this PostgreSQL ships them.
-- Run by the bootstrap superuser `postgres` on the `postgres` database of a fresh cluster.

create role supabase_admin login superuser createdb createrole replication bypassrls;
create role supabase_replication_admin login replication;
create role supabase_read_only_user login bypassrls;
grant pg_read_all_data to supabase_read_only_user;

-- the API roles: created NOINHERIT, switched to INHERIT in 2023
create role anon nologin inherit;
create role authenticated nologin inherit;
create role service_role nologin inherit bypassrls;
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';

-- PostgREST logs in as authenticator and switches to the role the JWT names
create role authenticator login noinherit;
grant anon, authenticated, service_role to authenticator;
alter role authenticator set statement_timeout = '8s';

-- the owners of the auth and storage schemas' objects (the two servers log in as them)
create role supabase_auth_admin login noinherit createrole noreplication;
alter role supabase_auth_admin set search_path = auth;
create role supabase_storage_admin login noinherit createrole noreplication;
alter role supabase_storage_admin set search_path = storage;
grant authenticator to supabase_storage_admin;

create role dashboard_user nologin nosuperuser createdb createrole replication;
create role pgbouncer login;

grant anon, authenticated, service_role to postgres;
grant supabase_auth_admin, supabase_storage_admin to postgres;
alter role postgres set search_path = "$user", public, extensions;
alter role supabase_admin set search_path = "$user", public, auth, extensions;
grant all on database postgres to dashboard_user, postgres;

create publication supabase_realtime;        -- empty until the project adds tables

-- the image runs its init scripts as supabase_admin: it owns the schemas it creates and the
-- default privileges below are its own
set role supabase_admin;

create schema extensions;
do $$
declare
  ext text;
begin
  foreach ext in array array['uuid-ossp', 'pgcrypto'] loop
    if exists (select from pg_available_extensions where name = ext) then
      execute format('create extension if not exists %I with schema extensions', ext);
    end if;
  end loop;
end $$;

grant usage on schema public to postgres, anon, authenticated, service_role;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
grant all on schema extensions to dashboard_user, postgres;

alter default privileges in schema public
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges in schema public
  grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges in schema public
  grant all on sequences to postgres, anon, authenticated, service_role;

-- PostgREST reloads its schema cache on NOTIFY pgrst: one trigger for created/altered
-- objects, one for dropped ones
create function extensions.pgrst_ddl_watch() returns event_trigger
language plpgsql as $$
declare
  cmd record;
begin
  for cmd in select * from pg_event_trigger_ddl_commands() loop
    if cmd.schema_name is distinct from 'pg_temp' and cmd.command_tag in (
        'CREATE SCHEMA', 'ALTER SCHEMA', 'CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO',
        'ALTER TABLE', 'CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'CREATE VIEW',
        'ALTER VIEW', 'CREATE MATERIALIZED VIEW', 'ALTER MATERIALIZED VIEW',
        'CREATE FUNCTION', 'ALTER FUNCTION', 'CREATE TRIGGER', 'CREATE TYPE', 'CREATE RULE',
        'COMMENT') then
      notify pgrst, 'reload schema';
    end if;
  end loop;
end $$;

create function extensions.pgrst_drop_watch() returns event_trigger
language plpgsql as $$
declare
  obj record;
begin
  for obj in select * from pg_event_trigger_dropped_objects() loop
    if not obj.is_temporary and obj.object_type in (
        'schema', 'table', 'foreign table', 'view', 'materialized view', 'function',
        'trigger', 'type', 'rule') then
      notify pgrst, 'reload schema';
    end if;
  end loop;
end $$;

create event trigger pgrst_ddl_watch on ddl_command_end
  execute function extensions.pgrst_ddl_watch();
create event trigger pgrst_drop_watch on sql_drop
  execute function extensions.pgrst_drop_watch();

-- the image's pg_cron hook: an event trigger with a tag filter (grants on schema cron when
-- the extension creates it)
create function extensions.grant_pg_cron_access() returns event_trigger
language plpgsql as $$
begin
  if exists (select from pg_event_trigger_ddl_commands() ev
             join pg_namespace n on n.oid = ev.objid where n.nspname = 'cron') then
    grant usage on schema cron to postgres with grant option;
  end if;
end $$;
comment on function extensions.grant_pg_cron_access() is 'Grants access to pg_cron';
create event trigger issue_pg_cron_access on ddl_command_end
  when tag in ('CREATE SCHEMA') execute function extensions.grant_pg_cron_access();

grant all on all routines in schema extensions to dashboard_user, postgres;

reset role;

-- the same default privileges for what postgres (the dashboard's and the migrations' role)
-- creates in public: the initial schema's unqualified ALTER DEFAULT PRIVILEGES belong to
-- whichever role runs them, and real projects' dumps carry them for postgres (issue 29)
alter default privileges for role postgres in schema public
  grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on functions to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on sequences to anon, authenticated, service_role;

-- pgbouncer looks passwords up through a SECURITY DEFINER function in its own schema
revoke all on schema public from pgbouncer;
create schema pgbouncer authorization pgbouncer;
create function pgbouncer.get_auth(p_usename text) returns table (username text, password text)
language sql security definer as $$
  select usename::text, passwd::text from pg_catalog.pg_shadow where usename = p_usename
$$;
revoke all on function pgbouncer.get_auth(text) from public;
grant execute on function pgbouncer.get_auth(text) to pgbouncer;
