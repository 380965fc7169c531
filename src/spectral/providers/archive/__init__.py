"""A plain archive a team already has: pg_basebackup folders and a WAL folder its
archive_command fills, attached read-only (provider = "archive"; docs/attach.md)."""
