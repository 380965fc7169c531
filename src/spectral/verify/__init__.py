"""Verification engine: schema fingerprints from the system catalogs, exact row counts, content
checksums computed inside PostgreSQL, and comparison with explanations in words."""
