-- Seed: five users signed up by e-mail, as the auth server writes them (a users row, then its
-- email identity, in one transaction), so the profiles come from on_auth_user_created; to-dos
-- and documents per user. Column facts from github.com/supabase/auth @
-- bc32168e13fdc928c98b449fc76bc3fdb9a293c5 (MIT License); written by us.
-- Ids are derived from the user's number, so every build has the same ones.
begin;
insert into auth.users (instance_id, id, aud, role, email, encrypted_password,
                        email_confirmed_at, confirmation_token, recovery_token,
                        last_sign_in_at, raw_app_meta_data, raw_user_meta_data,
                        is_super_admin, created_at, updated_at)
select '00000000-0000-0000-0000-000000000000', md5('supabase-world-user-' || g)::uuid,
       'authenticated', 'authenticated', format('user%s@example.test', g),
       '$2a$10$' || md5('password-' || g), now(), '', '', now(),
       '{"provider": "email", "providers": ["email"]}',
       jsonb_build_object('full_name', format('User %s', g), 'email_verified', true),
       null, now(), now()
from generate_series(1, 5) g;

insert into auth.identities (provider_id, user_id, identity_data, provider, last_sign_in_at,
                             created_at, updated_at)
select u.id::text, u.id,
       jsonb_build_object('sub', u.id::text, 'email', u.email, 'email_verified', false,
                          'phone_verified', false),
       'email', now(), now(), now()
from auth.users u;
commit;

-- user n has n + 1 to-dos and two documents
insert into public.todos (user_id, task, is_complete)
select u.id, format('task %s of %s', t, u.email), t % 2 = 0
from auth.users u
cross join lateral generate_series(1, substring(u.email from 'user(\d+)@')::int + 1) t;

insert into storage.objects (bucket_id, name, owner, owner_id, metadata)
select 'documents', u.id::text || '/' || f, u.id, u.id::text,
       jsonb_build_object('size', 1024, 'mimetype', 'application/pdf')
from auth.users u cross join (values ('file.pdf'), ('reports/summary.pdf')) as v (f);

insert into public.documents (owner, object_id, title)
select o.owner, o.id, storage.filename(o.name) from storage.objects o;
