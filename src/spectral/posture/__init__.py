"""Posture tiers and the activation triggers that say when the tier must be raised."""
