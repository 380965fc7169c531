"""Spectral DR: the disaster-recovery runbook for PostgreSQL, executable, measured and logged."""

__version__ = "0.1.0"
