"""Alembic environment: run migrations on the engine the service passes in.

``gpupool.service.db.migrate`` puts its engine in ``config.attributes["engine"]``; the
``alembic`` command line may instead give ``-x url=...`` or set ``GPUPOOL_DATABASE_URL``.
"""

from __future__ import annotations

import os

from alembic import context

from gpupool.service.db import Base, make_engine

config = context.config
engine = config.attributes.get("engine")
if engine is None:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("GPUPOOL_DATABASE_URL")
    if not url:
        raise SystemExit("give -x url=... or GPUPOOL_DATABASE_URL")
    engine = make_engine(url)

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
