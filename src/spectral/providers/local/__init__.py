"""The local provider: pg_basebackup (full and incremental), continuous WAL archiving with the
basic_archive module, pg_receivewal streaming, and point-in-time restore with pg_combinebackup
and PostgreSQL's own recovery."""
