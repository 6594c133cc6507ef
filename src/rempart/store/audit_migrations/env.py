"""Alembic environment of the audit tables (own version table: they may live apart)."""

from rempart.store.migrate import run_environment

run_environment("audit")
