"""Operator commands: `codeatlas doctor`, `codeatlas backup`, `codeatlas restore`."""
