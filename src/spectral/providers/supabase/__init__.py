"""The Supabase provider: backups, the PITR window and in-place PITR through the Management API.
The Management API client is imported only here."""
