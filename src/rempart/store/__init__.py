"""Persistence: SQLAlchemy models, engines, Alembic migrations and the bulk world loader."""
