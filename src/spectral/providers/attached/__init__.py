"""Backups a team already has (its own pgBackRest stanza, a plain archive, Barman), proven
read-only: a live server spectral only connects to, a repository it only reads, restores into
throwaway instances on this host."""
