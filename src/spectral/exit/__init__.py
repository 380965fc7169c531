"""Provider exit: the portability report, the logical move of the protected schemas into a
PostgreSQL elsewhere, and its proof (docs/provider-exit.md)."""
