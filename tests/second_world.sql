-- A second world for the tests, unlike the reference schemas: a shop in `public`, with
-- partitions, a populated and an unpopulated materialized view, domains, an enum, arrays,
-- tsvector, row-level security, a publication, a trigger and a plpgsql function.
create extension citext schema public;
create domain email as text check (value ~ '^[^@]+@[^@]+$');
create domain positive_cents as bigint check (value > 0);
create type order_status as enum ('new', 'paid', 'shipped', 'cancelled');

create table customers (
    id bigint generated always as identity primary key,
    email email not null unique,
    tags text[] not null default '{}',
    nickname citext,
    created_at timestamptz not null default now()
);
alter table customers enable row level security;
create policy own_rows on customers using (email = current_setting('app.email', true));

create table orders (
    id bigint generated always as identity primary key,
    customer_id bigint not null references customers,
    status order_status not null default 'new',
    total positive_cents not null,
    note text,
    search tsvector generated always as (to_tsvector('simple', coalesce(note, ''))) stored,
    last_update timestamptz not null default now()
);
create index orders_search on orders using gin (search);

create table payments (
    id bigint generated always as identity primary key,
    order_id bigint not null references orders,
    amount positive_cents not null
);

create table events (id bigint not null, at date not null, kind text) partition by range (at);
create table events_2025 partition of events for values from ('2025-01-01') to ('2026-01-01');
create table events_2026 partition of events for values from ('2026-01-01') to ('2027-01-01');

create function touch() returns trigger language plpgsql as $$
begin new.last_update := now(); return new; end $$;
create trigger orders_touch before update on orders for each row execute function touch();

create view open_orders as select id, customer_id, total from orders where status = 'new';
create materialized view revenue as select status, sum(total) as total from orders group by 1;
create materialized view later as select count(*) as n from payments with no data;
create publication shop_orders for table orders;

insert into customers (email, tags) select 'c' || g || '@shop.test', array['t' || g % 3]
from generate_series(1, 50) g;
insert into orders (customer_id, total, note, status)
select 1 + g % 50, 100 + g, 'order ' || g, (array['new', 'paid', 'shipped'])[1 + g % 3]::order_status
from generate_series(1, 300) g;
insert into payments (order_id, amount) select g, 100 + g from generate_series(1, 200) g;
insert into events select g, date '2025-06-01' + g, 'k' || g % 4 from generate_series(1, 400) g;
refresh materialized view revenue;
