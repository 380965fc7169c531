"""The pgBackRest provider: a cluster spectral runs, whose base backups and WAL archive are
pgBackRest's (POSIX or S3 repositories). Drills, verification, find-damage and the ledger are
the local provider's, on top of pgBackRest's own commands."""
