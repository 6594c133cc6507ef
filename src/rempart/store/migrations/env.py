"""Alembic environment of the rights service's tables."""

from rempart.store.migrate import run_environment

run_environment("data")
