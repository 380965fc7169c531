"""The re-export hook: triggers on the rule tables that announce, with LISTEN/NOTIFY on channel
`spectral_rules`, which partner's corpus changed (`*` for a TRUNCATE: everything)."""

from __future__ import annotations

from typing import Any

import psycopg

CHANNEL = "spectral_rules"
TABLES = ("platform.corpora", "platform.rules", "platform.rule_versions",
          "platform.rule_references")

INSTALL = f"""
create schema if not exists spectral_hooks;
comment on schema spectral_hooks is 'Installed by spectral db rules-hook; safe to drop.';

create or replace function spectral_hooks.partner_of_corpus(p_corpus bigint) returns text
    language sql stable as $$
    select p.slug from platform.corpora c join core.partners p on p.id = c.partner_id
    where c.id = p_corpus and c.owner = 'partner' $$;

create or replace function spectral_hooks.partner_of_rule(p_rule bigint) returns text
    language sql stable as $$
    select spectral_hooks.partner_of_corpus(r.corpus_id) from platform.rules r
    where r.id = p_rule $$;

create or replace function spectral_hooks.announce_row() returns trigger
    language plpgsql as $$
declare
    rec record;
    who text;
begin
    if tg_op = 'DELETE' then rec := old; else rec := new; end if;
    -- each table has its own columns: one branch each (a CASE would be planned for all)
    if tg_table_name = 'corpora' then
        select p.slug into who from core.partners p where p.id = rec.partner_id;
    elsif tg_table_name = 'rules' then
        who := spectral_hooks.partner_of_corpus(rec.corpus_id);
    else
        who := spectral_hooks.partner_of_rule(rec.rule_id);
    end if;
    if tg_table_name = 'rules' and tg_op = 'UPDATE' then
        -- a rule moved to another corpus changes the old corpus's partner too
        if spectral_hooks.partner_of_corpus(old.corpus_id) is not null then
            perform pg_notify('{CHANNEL}', spectral_hooks.partner_of_corpus(old.corpus_id));
        end if;
    end if;
    if who is not null then
        perform pg_notify('{CHANNEL}', who);   -- identical payloads coalesce per transaction
    end if;
    return null;
end $$;

create or replace function spectral_hooks.announce_truncate() returns trigger
    language plpgsql as $$
begin
    perform pg_notify('{CHANNEL}', '*');
    return null;
end $$;
"""


def install_sql() -> str:
    parts = [INSTALL]
    for table in TABLES:
        name = table.split(".")[1]
        parts.append(f"drop trigger if exists spectral_rules_row on {table};"
                     f"create trigger spectral_rules_row after insert or update or delete on "
                     f"{table} for each row execute function spectral_hooks.announce_row();"
                     f"drop trigger if exists spectral_rules_truncate on {table};"
                     f"create trigger spectral_rules_truncate after truncate on {table} "
                     f"for each statement execute function spectral_hooks.announce_truncate();")
        del name
    return "\n".join(parts)


def install(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute(install_sql().encode())


def uninstall(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        for table in TABLES:
            conn.execute(f"drop trigger if exists spectral_rules_row on {table}")
            conn.execute(f"drop trigger if exists spectral_rules_truncate on {table}")
        conn.execute("drop schema if exists spectral_hooks cascade")


def status(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    rows = conn.execute("select c.oid::regclass::text, t.tgname, t.tgenabled from pg_trigger t "
                        "join pg_class c on c.oid = t.tgrelid where t.tgname in "
                        "('spectral_rules_row', 'spectral_rules_truncate')").fetchall()
    found = {(r[0], r[1]): r[2] for r in rows}
    tables = {t: all(found.get((t, n)) == "O" for n in ("spectral_rules_row",
                                                         "spectral_rules_truncate"))
              for t in TABLES}
    return {"installed": all(tables.values()), "tables": tables, "channel": CHANNEL}
