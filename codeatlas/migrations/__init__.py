"""Alembic migrations: the only source of the schema (5-C)."""
