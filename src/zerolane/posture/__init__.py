"""Posture: NHI inventory, findings and least-privilege suggestions."""
