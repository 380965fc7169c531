"""`spectral init`: a commented starter configuration a person fills in."""

from __future__ import annotations

STARTER = '''\
# Spectral DR configuration. Modelled on infra/environments.toml: one [environments.<name>] table
# per environment. Secrets are never written here: use a reference that the tool resolves when it
# needs the value: env:NAME, file:PATH or op://vault/item/field (1Password CLI).

default_environment = "local"

[environments.local]
# The embedded default: the tool runs PostgreSQL itself under state_dir.
provider = "local"
posture = "alpha"                # alpha (re-seed) | pro (daily backups) | pitr (point in time)
schemas = ["core", "worlds", "platform"]
load_bearing_tables = ["core.users", "core.partners", "worlds.returns", "platform.rules"]
# database = "postgres"          # the database to protect (created on first use)
# state_dir = ".spectral/local"
# pg_bin_dir = "/usr/lib/postgresql/15/bin"   # a system PostgreSQL 15-18 instead of the wheel

[environments.local.contract]
# What must survive a restore; every drill checks it (without this table: "not configured").
# Tables: "schema.table", or { name = "schema.table", columns = ["id", ...], rls = true }.
tables = ["core.orgs", "core.users", "core.partners"]
# Schemas (or schema.tables) whose foreign keys into those tables must exist, validated.
referenced_by = ["worlds", "platform"]

[environments.production]
provider = "supabase"
posture = "alpha"                # raise to "pro", then "pitr", when an activation trigger fires
project_ref = "abcdefghijklmnopqrst"
dsn = "op://Spectral/supabase-production/dsn"
access_token = "env:SUPABASE_ACCESS_TOKEN"
# rpo_target = "2m"              # defaults come from the posture tier (runbook targets table)
# rto_target = "60m"
# launch_date = 2027-03-01       # customer launch: the floor for activating PITR
# provision_command = "tools/provision/provision.sh --env production"

[environments.production.contract]
tables = ["core.orgs", "core.users", "core.partners"]
referenced_by = ["worlds", "platform"]
'''
