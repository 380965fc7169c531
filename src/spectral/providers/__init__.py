"""Providers: where backups live and how a restore is made. `local` (PostgreSQL-native tools)
and, later, `supabase` (Management API) implement the same `Provider` protocol."""
