-- Optional (build(..., storage_fk=True)): public depends on storage, so public cannot move
-- without storage. Written by us for spectral's tests; storage.objects as in 03_storage.sql
-- (facts from github.com/supabase/storage @ 4fa61fba9371c4bd40cbb81509f07bcb3af21683,
-- Apache License 2.0).
alter table public.documents add constraint documents_object_id_fkey
  foreign key (object_id) references storage.objects (id) on delete cascade;
