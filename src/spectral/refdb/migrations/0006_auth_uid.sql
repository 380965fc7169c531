-- auth.uid() as on Supabase (the `sub` claim of the request's JWT), and a policy that uses it:
-- the provider-exit path must carry policies that call the provider's auth functions.
CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(coalesce(current_setting('request.jwt.claim.sub', true),
                                 (nullif(current_setting('request.jwt.claims', true), '')::jsonb
                                  ->> 'sub')), '')::uuid $$;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;

CREATE POLICY users_self_read ON core.users FOR SELECT TO authenticated
    USING (id = auth.uid());
