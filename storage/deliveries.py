"""Slack deliveries already handled, shared by every bot process on one database.

Slack retries an event to whichever connection or replica it likes, and a user double-clicks
onto two replicas faster than either could tell on its own: the table `slack_deliveries` records
each request's keys (event id, trigger id, click) so that exactly one process handles it.
`first_time` (and `claim`, many at once) is the one atomic step; `DeliveryGuard` is what the
Slack middleware asks; `forget_before` and `forget_periodically` keep the table to the last ten
minutes.

Every time here is the database's clock (UTC), never a process's: replicas' clocks drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import DateTime, Float, Index, Insert, Text, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import ColumnElement, FunctionElement

from storage.db import Database
from storage.models import Base

log = logging.getLogger(__name__)

# The longest any key matters (a redelivered event or trigger); older rows are only clutter.
KEEP_SECONDS = 600.0
FORGET_BATCH = 1000
FORGET_EVERY_SECONDS = 60.0
# How long a request waits for the database's answer before it is let through: well inside
# Slack's 3 s ack, so a slow or locked database costs a few duplicates' protection, not the ack.
GUARD_TIMEOUT_SECONDS = 1.0


class utc_now(FunctionElement[datetime]):
    """The database's current time in UTC, with sub-second precision (a 2 s window needs it)."""

    type = DateTime()
    inherit_cache = True


class utc_seconds_ago(FunctionElement[datetime]):
    """The database's UTC time `seconds` ago; `seconds` is any SQL expression."""

    type = DateTime()
    inherit_cache = True


@compiles(utc_now, "postgresql")
def _utc_now_postgresql(element, compiler, **kw) -> str:
    return "timezone('utc', now())"


@compiles(utc_now, "sqlite")
def _utc_now_sqlite(element, compiler, **kw) -> str:
    # Text that sorts as it reads, with milliseconds; every row is written in this one format,
    # so comparing the strings compares the times (and the index on seen_at serves the cleanup).
    return "strftime('%Y-%m-%d %H:%M:%f', 'now')"


@compiles(utc_seconds_ago, "postgresql")
def _utc_seconds_ago_postgresql(element, compiler, **kw) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"(timezone('utc', now()) - make_interval(secs => {seconds}))"


@compiles(utc_seconds_ago, "sqlite")
def _utc_seconds_ago_sqlite(element, compiler, **kw) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+.3f seconds', -({seconds})))"


class Delivery(Base):
    __tablename__ = "slack_deliveries"

    # "event:Ev…", "trigger:…", "click:user:where:action:value" (handlers/middleware.py makes them)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(DateTime, server_default=utc_now())

    __table_args__ = (Index("ix_slack_deliveries_seen_at", "seen_at"),)


def _claim(insert) -> Insert:
    """Record a key, returning it only when it was not seen within `ttl` seconds before."""
    table = Delivery.__table__
    statement = insert(table).values(key=bindparam("key"), seen_at=utc_now())
    # A conflict is the key seen before: take it over only when that sighting is older than its
    # ttl. PostgreSQL locks the row and evaluates this on its newest version, so of several
    # processes claiming one key at once, the others wait and then find it fresh.
    return statement.on_conflict_do_update(
        index_elements=[table.c.key],
        set_={"seen_at": statement.excluded.seen_at},
        where=table.c.seen_at < utc_seconds_ago(bindparam("ttl", type_=Float)),
    ).returning(table.c.key)


# Built once, with the same shape every time, so SQLAlchemy compiles each only once: a claim
# runs before every Slack ack.
_CLAIM = {"postgresql": _claim(postgresql_insert), "sqlite": _claim(sqlite_insert)}


async def claim_keys(session: AsyncSession | AsyncConnection, ttl_of: Mapping[str, float]) -> set[str]:
    """Record the keys of `ttl_of` (key -> ttl in seconds); return those new here, or last seen
    longer than their ttl ago. Atomic across processes: of any number claiming one key at once,
    exactly one gets it, also when its previous sighting expired.

    One statement for all the keys of one ttl (SQLAlchemy sends an executemany of this INSERT as
    one multi-row INSERT), so a batch of commands costs one round trip, a batch with clicks two.
    Keys go in one global order, by ttl then key: processes claiming overlapping keys take their
    row locks in that order, never in a circle."""
    statement = _CLAIM[(session.bind if isinstance(session, AsyncSession) else session).dialect.name]
    by_ttl: dict[float, list[str]] = {}
    for key in sorted(ttl_of):
        by_ttl.setdefault(ttl_of[key], []).append(key)
    new: set[str] = set()
    for ttl in sorted(by_ttl):
        # every row carries the ttl: the one bound in the WHERE clause is taken from the first
        rows = [{"key": key, "ttl": ttl} for key in by_ttl[ttl]]
        new.update((await session.execute(statement, rows)).scalars())
    return new


async def first_time(session: AsyncSession | AsyncConnection, key: str, ttl_seconds: float) -> bool:
    """Record `key`; whether it is new here (or was last seen more than `ttl_seconds` ago)."""
    return key in await claim_keys(session, {key: ttl_seconds})


async def claim(
    session: AsyncSession | AsyncConnection, requests: Sequence[Mapping[str, float]]
) -> list[bool]:
    """For each request (its keys -> ttl in seconds), whether all its keys are new; records every
    key. A key two of these requests share goes to the first."""
    ttl_of: dict[str, float] = {}
    for ttls in requests:
        for key, ttl in ttls.items():
            ttl_of.setdefault(key, ttl)
    new = await claim_keys(session, ttl_of)
    answers = []
    for ttls in requests:
        answers.append(new.issuperset(ttls))
        if answers[-1]:
            new.difference_update(ttls)
    return answers


async def forget_before(
    session: AsyncSession, cutoff: datetime | timedelta, *, limit: int = FORGET_BATCH
) -> int:
    """Delete up to `limit` keys last seen before `cutoff` (an aware datetime, or a timedelta:
    that long ago by the database's clock); return how many. Call again while it returns `limit`."""
    sqlite = session.bind.dialect.name == "sqlite"
    before: ColumnElement[datetime]
    if isinstance(cutoff, timedelta):
        before = utc_seconds_ago(bindparam("age", cutoff.total_seconds(), type_=Float))
    elif sqlite:  # compared as text, so written as the rows are (see utc_now)
        when = cutoff.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "milliseconds")
        before = bindparam("cutoff", when, type_=Text)
    else:
        before = bindparam("cutoff", cutoff.astimezone(UTC).replace(tzinfo=None), type_=DateTime)
    oldest = select(Delivery.key).where(Delivery.seen_at < before).limit(limit)
    if not sqlite:
        # Every process runs this job: each takes rows the others are not deleting right now.
        oldest = oldest.with_for_update(skip_locked=True)
    # seen_at is checked again on the row itself: a key claimed anew meanwhile is kept.
    statement = delete(Delivery).where(Delivery.key.in_(oldest.scalar_subquery()), Delivery.seen_at < before)
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return result.rowcount


class DeliveryGuard:
    """What the Slack middleware asks before handling a request: have I (any process) seen these
    keys within their ttl? Bounded in time: when the database cannot answer, the request goes
    through (a deploy is still protected by its request_key), because refusing every request
    while the database hiccups is worse.

    Built for the ack path, where every await under load is a turn of a busy event loop:
    - one connection of the request pool, kept, in autocommit: a claim is one statement, one
      round trip, with no checkout, ping, BEGIN or COMMIT around it (each one more turn);
    - requests that arrive while a claim is on its way wait for the next and share it (group
      commit): forty commands at once cost a few statements, not forty writers queueing for
      SQLite's one write lock or for connections of the pool.

    With SQLite it asks nothing by default: SQLite serves one process (DESIGN §12), whose own
    memory (the middleware's) knows every request it was sent, and a write on the ack path queues
    behind the write lock the deploys hold (P1 on SQLite: ack p99 from 65 ms to 280-480 ms)."""

    # True: ask an SQLite database too (tests of two processes on one SQLite file)
    on_sqlite = False

    def __init__(self, db: Database, *, timeout: float = GUARD_TIMEOUT_SECONDS) -> None:
        self.db = db
        self.timeout = timeout
        self._waiting: list[tuple[Mapping[str, float], asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._connection: AsyncConnection | None = None

    async def first_time(self, ttls: Mapping[str, float]) -> bool:
        """True unless one of the keys was seen within its ttl (seconds)."""
        if self.db.is_sqlite and not self.on_sqlite:
            return True
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        self._waiting.append((ttls, answer))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())
        # A timer answers for the database when it is late: giving up does not wait for the
        # database (a cancelled SQLite call still finishes its lock wait), and the claim, landing
        # later, still protects later repeats. (Awaiting the future itself, not asyncio.wait or
        # wait_for around it, wakes this request one turn of the event loop sooner.)
        timer = loop.call_later(self.timeout, self._late, answer, ttls)
        try:
            return await answer
        finally:
            timer.cancel()

    def _late(self, answer: asyncio.Future[bool], ttls: Mapping[str, float]) -> None:
        if not answer.done():
            log.warning("no answer from the database within %.1f s: let %s through", self.timeout, list(ttls))
            answer.set_result(True)

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                answers = await self._claim([ttls for ttls, _ in batch])
            except Exception as exc:
                log.warning("could not check %d requests for repeats (%s): let them through", len(batch), exc)
                answers = [True] * len(batch)
            for (_, answer), first in zip(batch, answers, strict=True):
                if not answer.done():
                    answer.set_result(first)

    async def _claim(self, requests: list[Mapping[str, float]]) -> list[bool]:
        if self._connection is None:
            connection = await self.db.engine.connect()
            self._connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
        try:
            return await claim(self._connection, requests)
        except Exception:
            await self._drop_connection()  # perhaps broken (a database restart): a new one next time
            raise

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.invalidate()
            with contextlib.suppress(Exception):
                await connection.close()

    async def settle(self, timeout: float | None = None) -> None:
        """Wait (up to `timeout` seconds) for claims still being written after their request went
        through."""
        if self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer}, timeout=timeout)

    async def close(self, timeout: float | None = None) -> None:
        """Let claims on their way land, then give the connection back (before the database
        closes)."""
        await self.settle(timeout)
        if self._connection is not None:
            connection, self._connection = self._connection, None
            with contextlib.suppress(Exception):
                await connection.close()


async def forget_expired(db: Database, keep: float = KEEP_SECONDS) -> int:
    """Delete every key older than `keep` seconds, a batch per transaction; return how many."""
    total = 0
    while True:
        async with db.session(background=True) as session:
            deleted = await forget_before(session, timedelta(seconds=keep))
        total += deleted
        if deleted < FORGET_BATCH:
            return total


async def forget_periodically(db: Database) -> None:
    """Run `forget_expired` every FORGET_EVERY_SECONDS until cancelled. Safe in every process at once."""
    while True:
        await asyncio.sleep(FORGET_EVERY_SECONDS)
        try:
            await forget_expired(db)
        except Exception:
            log.exception("forgetting old Slack deliveries failed")
