"""Signals between bot processes on one PostgreSQL: NOTIFY when something is asked of another
process (a deploy to claim, a cancel for the deploy's owner), LISTEN to act on it within moments.

`announce` sends inside the caller's transaction, so a signal is delivered only if what it points to
was committed. SQLAlchemy has no API for LISTEN: `Listener` keeps one asyncpg connection of its own,
outside the pools, and listens again after any reconnect (a database restart, a cut connection),
telling its owner so that whatever was announced meanwhile is looked up by polling. Signals are a
shortcut only: every receiver also polls, so a lost signal delays, never loses, what it announced.
SQLite is one process: nothing to signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from bot.aio import wait_event

log = logging.getLogger(__name__)

CHANNEL = "deploybot"
PING_SECONDS = 5.0  # a silent connection is checked this often, so a dead one is noticed
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0)


async def announce(session: AsyncSession, message: str) -> None:
    """Tell every listening process `message` once the session commits (nothing on SQLite)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(CHANNEL, message)))


def asyncpg_dsn(url: str) -> str:
    """The plain libpq URL asyncpg takes, from SQLAlchemy's `postgresql+asyncpg://` one."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """Calls `on_message(payload)` for each signal and `on_connect()` each time it (re)connects."""

    def __init__(self, url: str, on_message: Callable[[str], None], on_connect: Callable[[], None]) -> None:
        self._dsn = asyncpg_dsn(url)
        self._on_message = on_message
        self._on_connect = on_connect
        self._task: asyncio.Task | None = None
        self.connected = asyncio.Event()
        self.server_pid: int | None = None  # the backend of the listening connection

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="deploybot-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._listen()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("listening for signals failed, reconnecting: %r", exc)
                failures += 1
            self.connected.clear()
            await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self._dsn, timeout=10)
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, self._received)
            self.server_pid = conn.get_server_pid()
            self.connected.set()
            self._on_connect()
            while not await wait_event(lost, PING_SECONDS):
                await conn.fetchval("SELECT 1", timeout=PING_SECONDS)
        finally:
            conn.terminate()  # nothing to finish on a connection that only listens

    def _received(self, _conn, _pid: int, _channel: str, payload: str) -> None:
        try:
            self._on_message(payload)
        except Exception:
            log.exception("handling the signal %r failed", payload)
