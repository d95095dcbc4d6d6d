"""Engine, sessions and schema migrations.

One `AsyncSession` per unit of work (a Slack event, a REST request, a job), committed or rolled back
by `Database.session()`; repositories never commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot.config import normalize_url

MIGRATIONS = Path(__file__).with_name("migrations")
MIGRATION_LOCK = 0x6465706C6F79  # the advisory lock key that serializes migrations ("deploy")


def _sqlite_pragmas(dbapi_conn, busy_timeout: float) -> None:
    cursor = dbapi_conn.cursor()
    # Log chunks are megabyte blobs: on 64 KiB pages one is written in 16 page writes, not 256,
    # which doubles how fast a chatty deploy is stored. Only a new, empty database takes it.
    cursor.execute("PRAGMA page_size=65536")
    # WAL lets readers (history, log followers) run while a deploy appends log chunks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Checkpoint (and fsync) every 256 MiB of WAL (4096 pages of 64 KiB) rather than every 4 MiB:
    # a deploy printing hundreds of megabytes is stored at disk speed. The WAL is cut back to 64 MiB
    # afterwards. (A database made with smaller pages checkpoints more often: 16 MiB at 4 KiB.)
    cursor.execute("PRAGMA wal_autocheckpoint=4096")
    cursor.execute("PRAGMA journal_size_limit=67108864")
    cursor.execute("PRAGMA foreign_keys=ON")
    # How long a write waits for another connection's write lock before it fails (and the deploy
    # path retries it).
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
    cursor.close()


# Connections for requests (Slack listeners, the REST API) and, apart, for the work the bot does by
# itself (running deploys, heartbeat, reaper, retention): however many requests pile up waiting for
# a connection, a running deploy always gets one to store its log and its end.
REQUEST_POOL = {"pool_size": 10, "max_overflow": 10}
BACKGROUND_POOL = {"pool_size": 3, "max_overflow": 5}
# The bot's own transactions are a few statements each. One left open longer than this belongs to a
# process that is paused or hung mid-write: PostgreSQL ends it, so the deploy row it locked can be
# reaped (a reaper would otherwise wait on that lock for as long as the pause lasts).
BACKGROUND_IDLE_IN_TRANSACTION_MS = 5000


def _create_private(path: Path) -> None:
    """Create a new SQLite file readable by the bot's account only (0600): deploy scripts under
    another account (run_as) must not read the history and logs. SQLite gives its WAL and shared
    memory files the same mode. An existing file is left as the operator made it."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Database:
    def __init__(self, url: str, *, busy_timeout: float = 10.0) -> None:
        """`busy_timeout`: seconds an SQLite write waits for a lock held elsewhere before failing."""
        self.url = normalize_url(url)
        self.busy_timeout = busy_timeout
        self.is_sqlite = self.url.startswith("sqlite")
        database = make_url(self.url).database if self.is_sqlite else None
        in_memory = self.is_sqlite and database in (None, "", ":memory:")
        if self.is_sqlite and not in_memory:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            if not database.startswith("file:"):  # a URI filename is SQLite's to open
                _create_private(Path(database))
        self.engine = self._engine(REQUEST_POOL, in_memory)
        # one in-memory database is one connection: nothing to keep apart
        self.background_engine = (
            self.engine
            if in_memory
            else self._engine(
                BACKGROUND_POOL, in_memory, idle_in_transaction_ms=BACKGROUND_IDLE_IN_TRANSACTION_MS
            )
        )
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._background_sessions = async_sessionmaker(self.background_engine, expire_on_commit=False)

    def _engine(
        self, pool: dict, in_memory: bool, *, idle_in_transaction_ms: int | None = None
    ) -> AsyncEngine:
        kwargs = {} if in_memory else dict(pool) if self.is_sqlite else {**pool, "pool_pre_ping": True}
        if idle_in_transaction_ms and make_url(self.url).drivername == "postgresql+asyncpg":
            settings = {"idle_in_transaction_session_timeout": str(idle_in_transaction_ms)}
            kwargs["connect_args"] = {"server_settings": settings}
        engine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(engine.sync_engine, "connect", self._on_connect)
        return engine

    def _on_connect(self, dbapi_conn, _record) -> None:
        _sqlite_pragmas(dbapi_conn, self.busy_timeout)

    @asynccontextmanager
    async def session(self, *, background: bool = False) -> AsyncIterator[AsyncSession]:
        """A unit of work, committed at the end or rolled back on error. `background=True` for
        the bot's own work (running deploys, jobs), on its own connections."""
        sessions = self._background_sessions if background else self._sessions
        async with sessions() as session:
            try:
                yield session
                await session.commit()
            except asyncio.CancelledError:
                # A rollback that fails here (the connection was cut mid-query) must not replace
                # the cancellation: a retry loop would take its error for an outage and go on.
                with contextlib.suppress(Exception):
                    await session.rollback()
                raise
            except BaseException:
                await session.rollback()
                raise

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.background_engine is not self.engine:
            await self.background_engine.dispose()

    async def has_schema(self) -> bool:
        async with self.engine.connect() as conn:
            return await conn.run_sync(lambda c: inspect(c).has_table("deploy_history"))

    async def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations up to `revision`. On PostgreSQL one process at a time: several
        started together on an empty database would each create the same tables."""
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            await conn.run_sync(_run_upgrade, revision)

    async def ensure_schema(self) -> bool:
        """Migrate an empty database; returns True when it did."""
        if await self.has_schema():
            await self.upgrade()
            return False
        await self.upgrade()
        return True


def alembic_config(url: str | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _run_upgrade(sync_conn, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, revision)


def run_sync(coro):
    """Run a coroutine from synchronous CLI code."""
    return asyncio.run(coro)
