"""The Spectral reference database: migrations, the cold-start seed and the authoring harness."""

REFERENCE_SCHEMAS = ("core", "worlds", "platform")
