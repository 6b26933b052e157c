"""The schema comes from Alembic migrations only, and they match the table definitions."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from gpupool.service.db import Base, make_engine, migrate


def test_migrations_build_the_schema_the_models_describe(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    migrate(engine)  # idempotent: upgrade head twice is a no-op
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0015"
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert {"jobs", "inbox", "outbox", "event_log", "usage", "audit", "alembic_version"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()
