"""`spectral init`: a commented starter configuration a person fills in, followed by every key
the configuration takes (generated from the models)."""

from __future__ import annotations

STARTER = '''\
# Spectral DR configuration: one [environments.<name>] table per database you protect.
# Secrets are never written here: use a reference the tool resolves when it needs the value:
# env:NAME, file:PATH or op://vault/item/field (1Password CLI).

default_environment = "local"

# A PostgreSQL that spectral runs itself (the embedded default), with Spectral's reference
# database in it: `spectral demo` seeds it and drills it. Point schemas, tables and the contract
# at your own database instead to protect that.
[environments.local]
provider = "local"
posture = "alpha"                # alpha (re-seed) | pro (daily backups) | pitr (point in time)
# database = "postgres"          # the database to protect (created on first use)
schemas = ["core", "worlds", "platform"]          # the schemas every drill verifies
load_bearing_tables = ["core.users", "core.partners", "worlds.returns", "platform.rules"]
# change_columns = { "worlds.returns" = "updated_at" }   # the RPO's newest change, per table;
#                                # default: a timestamp column whose default is now()
# state_dir = ".spectral/local"
# pg_bin_dir = "/usr/lib/postgresql/15/bin"   # a system PostgreSQL 15-18 instead of the wheel

[environments.local.contract]
# What must survive a restore; every drill checks it (without this table: "not configured").
# tables: "schema.table", or { name = "schema.table", columns = ["id", ...], rls = true }
tables = ["core.orgs", "core.users", "core.partners"]
# schemas (or schema.tables) whose foreign keys into those tables must exist, validated
referenced_by = ["worlds", "platform"]

# A database on Supabase: backups, PITR and restores through the Management API.
[environments.production]
provider = "supabase"
posture = "alpha"                # raise to "pro", then "pitr", when an activation trigger fires
project_ref = "abcdefghijklmnopqrst"
dsn = "op://Vault/supabase-production/dsn"          # names its database itself
access_token = "env:SUPABASE_ACCESS_TOKEN"
schemas = ["public"]
load_bearing_tables = []         # schema.table; a partitioned table counts its partitions
# rpo_target = "2m"              # defaults come from the posture tier (runbook targets table)
# rto_target = "60m"
# launch_date = 2027-03-01       # customer launch: the floor for activating PITR
# provision_command = "./deploy/provision production"   # run after a failover

# [environments.production.contract]
# tables = ["public.accounts", { name = "public.users", columns = ["id", "email"], rls = true }]
# referenced_by = ["public.orders"]
'''


def starter() -> str:
    from spectral.config.reference import toml_comments

    return STARTER + toml_comments()
