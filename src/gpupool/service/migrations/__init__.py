"""Alembic migrations of the service database: the only place the schema is created."""
