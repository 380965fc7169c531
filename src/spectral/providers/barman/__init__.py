"""A team's Barman Cloud backups and WAL in S3, attached read-only (provider =
"barman-cloud"; docs/attach.md)."""
