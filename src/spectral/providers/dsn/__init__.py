"""The provider of a bare DSN: a database spectral connects to and reaches no backups of. Every
environment has a provider; this one only has a source."""
