"""Alembic environment: runs on the connection handed in by `Database.upgrade()`,
or on `sqlalchemy.url` for the `alembic` command line."""

import asyncio

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

import storage.deliveries  # noqa: F401  (its table is in Base.metadata only once it is imported)
from storage.models import Base

target_metadata = Base.metadata


def _migrate(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _online_from_url(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(_migrate)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _migrate(connection)
else:
    asyncio.run(_online_from_url(context.config.get_main_option("sqlalchemy.url")))
