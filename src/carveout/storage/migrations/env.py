"""Alembic environment: runs the versioned migrations on a connection the store hands in."""

from __future__ import annotations

from alembic import context

from carveout.datamap import METADATA

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when a developer runs `alembic` by hand
    import sqlalchemy as sa

    engine = sa.create_engine(config.get_main_option("sqlalchemy.url") or "sqlite://")
    connection = engine.connect()

context.configure(
    connection=connection,
    target_metadata=METADATA,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
