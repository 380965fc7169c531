"""Restore drills: prove that a backup restores, measure RTO and RPO, always tear down."""
