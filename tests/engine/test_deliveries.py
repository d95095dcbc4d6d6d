"""storage/deliveries.py on both databases: a key is claimed once however many sessions race for
it, again once its ttl passed by the database's clock, and old keys are forgotten in batches; the
guard lets a request through when the database errs or does not answer in time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from sqlalchemy import event, func, literal, select, text, update
from sqlalchemy.engine import make_url

from storage import deliveries
from storage.db import Database
from storage.deliveries import (
    Delivery,
    DeliveryGuard,
    claim,
    first_time,
    forget_before,
    forget_expired,
    utc_seconds_ago,
)
from storage.models import utcnow


async def claim_once(db: Database, key: str, ttl: float = 600.0) -> bool:
    async with db.session() as session:
        return await first_time(session, key, ttl)


async def age(db: Database, key: str, seconds: float) -> None:
    """Make `key` look last seen `seconds` ago by the database's clock."""
    async with db.session() as session:
        await session.execute(
            update(Delivery).where(Delivery.key == key).values(seen_at=utc_seconds_ago(literal(seconds)))
        )


async def keys(db: Database) -> set[str]:
    async with db.session() as session:
        return set((await session.execute(select(Delivery.key))).scalars())


async def race(db: Database, key: str, ttl: float = 600.0, n: int = 10) -> list[bool]:
    """`n` sessions, each on its own connection with its transaction open, claim `key` at once."""
    ready = asyncio.Barrier(n)

    async def one() -> bool:
        async with db.session() as session:
            await session.execute(text("SELECT 1"))  # the connection is checked out and in a transaction
            await ready.wait()
            return await first_time(session, key, ttl)

    return await asyncio.gather(*(one() for _ in range(n)))


async def test_a_key_is_new_once_and_only_for_its_ttl(db) -> None:
    assert await claim_once(db, "event:Ev0001")
    assert not await claim_once(db, "event:Ev0001")
    assert await claim_once(db, "event:Ev0002"), "another key is another request"

    await age(db, "event:Ev0001", 599)
    assert not await claim_once(db, "event:Ev0001"), "still inside its ten minutes"
    await age(db, "event:Ev0001", 601)
    assert await claim_once(db, "event:Ev0001"), "expired: a new request"
    assert not await claim_once(db, "event:Ev0001"), "and claimed afresh"


async def test_short_ttls_are_measured_by_the_database_clock_to_the_millisecond(db) -> None:
    key = "click:U0ADMIN01:1700000000.000100:view_logs:7"
    assert await claim_once(db, key, ttl=0.5)
    assert not await claim_once(db, key, ttl=0.5)
    await asyncio.sleep(0.6)
    assert await claim_once(db, key, ttl=0.5)


async def test_ten_sessions_racing_for_one_key_claim_it_once(db) -> None:
    assert sorted(await race(db, "trigger:1.2.3")) == [False] * 9 + [True]


async def test_ten_sessions_racing_for_an_expired_key_claim_it_once(db) -> None:
    assert await claim_once(db, "trigger:4.5.6")
    await age(db, "trigger:4.5.6", 700)
    assert sorted(await race(db, "trigger:4.5.6")) == [False] * 9 + [True]
    assert not await claim_once(db, "trigger:4.5.6")


async def test_a_request_is_new_only_when_all_its_keys_are(db) -> None:
    trigger, click = "trigger:a", "click:U0ADMIN01:1700000000.000100:view_logs:7"
    async with db.session() as session:
        assert await claim(session, [{trigger: 600, click: 2}]) == [True]
    await age(db, trigger, 3)
    await age(db, click, 3)
    async with db.session() as session:
        # the click's 2 s window passed; the trigger's ten minutes did not
        assert await claim(session, [{trigger: 600, click: 2}]) == [False]
    async with db.session() as session:
        # a double click: another trigger, the same click
        assert await claim(session, [{"trigger:b": 600, click: 2}]) == [False]


async def test_requests_claimed_together_share_a_key_only_once(db) -> None:
    requests = [
        {"trigger:c": 600, "click:x": 2},
        {"trigger:d": 600, "click:x": 2},  # a double click in the same batch
        {"event:Ev1": 600},
        {"event:Ev1": 600},  # a redelivery in the same batch
        {"event:Ev2": 600},
    ]
    async with db.session() as session:
        assert await claim(session, requests) == [True, False, True, False, True]


async def test_old_keys_are_forgotten_in_batches(db) -> None:
    for n in range(5):
        assert await claim_once(db, f"event:Ev{n}")
    for n in range(3):
        await age(db, f"event:Ev{n}", 700)

    async with db.session() as session:
        assert await forget_before(session, timedelta(minutes=10), limit=2) == 2
    async with db.session() as session:
        assert await forget_before(session, timedelta(minutes=10), limit=2) == 1
    async with db.session() as session:
        assert await forget_before(session, timedelta(minutes=10), limit=2) == 0
    assert await keys(db) == {"event:Ev3", "event:Ev4"}

    # an absolute cutoff (an aware datetime) works too: a minute from now forgets everything
    async with db.session() as session:
        assert await forget_before(session, utcnow() + timedelta(minutes=1)) == 2
    assert await keys(db) == set()


async def test_forget_expired_runs_batches_until_done_and_in_every_process_at_once(db, monkeypatch) -> None:
    monkeypatch.setattr(deliveries, "FORGET_BATCH", 3)
    for n in range(10):
        await claim_once(db, f"trigger:{n}")
        await age(db, f"trigger:{n}", 700)
    await claim_once(db, "trigger:fresh")

    forgotten = await asyncio.gather(forget_expired(db), forget_expired(db), forget_expired(db))
    assert sum(forgotten) == 10
    assert await keys(db) == {"trigger:fresh"}


@contextlib.asynccontextmanager
async def write_lock_held(db: Database) -> AsyncIterator[None]:
    """Another client holds a lock that makes every insert into slack_deliveries wait."""
    url = make_url(db.url)
    if db.is_sqlite:
        conn = sqlite3.connect(url.database, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE slack_deliveries IN EXCLUSIVE MODE")
            yield
    finally:
        await conn.close()


@pytest.fixture(autouse=True)
def guard_on_sqlite_too(monkeypatch) -> None:
    """The guard asks an SQLite database only when told to (one process: its memory suffices)."""
    monkeypatch.setattr(DeliveryGuard, "on_sqlite", True)


@pytest.fixture
async def guard(db) -> AsyncIterator[DeliveryGuard]:
    guard = DeliveryGuard(db)
    yield guard
    await guard.close()


async def test_with_sqlite_the_guard_asks_nothing_by_default(db, guard, monkeypatch) -> None:
    monkeypatch.setattr(DeliveryGuard, "on_sqlite", False)
    assert await guard.first_time({"event:Ev9": 600})
    repeat = await guard.first_time({"event:Ev9": 600})
    if db.is_sqlite:
        assert repeat and await keys(db) == set(), "the middleware's memory decides alone"
    else:
        assert not repeat and await keys(db) == {"event:Ev9"}


async def test_the_guard_asks_with_one_statement_on_a_connection_it_keeps(db, guard) -> None:
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        statements.append(statement.split()[0].upper())

    assert await guard.first_time({"trigger:w": 600})  # connects
    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        assert await guard.first_time({"event:Ev1": 600})
        assert not await guard.first_time({"event:Ev1": 600})
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert statements == ["INSERT", "INSERT"], "no checkout ping, no BEGIN or COMMIT round trips"


async def test_the_guard_lets_a_request_through_when_the_database_is_slow(db, guard, caplog) -> None:
    guard.timeout = 0.3
    assert await guard.first_time({"trigger:x": 600})
    assert not await guard.first_time({"trigger:x": 600})

    async with write_lock_held(db):
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="storage.deliveries"):
            assert await guard.first_time({"trigger:y": 600}), "let through"
        assert time.monotonic() - started < 1.0, "without waiting for the lock"
        assert "no answer from the database" in caplog.text
    await guard.settle()
    # the claim landed once the lock was gone: a later repeat is still dropped
    assert not await guard.first_time({"trigger:y": 600})


async def test_the_guard_lets_a_request_through_when_the_database_errs(db, guard, caplog) -> None:
    assert await guard.first_time({"trigger:v": 600})
    async with db.session() as session:
        await session.execute(text("DROP TABLE slack_deliveries"))
    with caplog.at_level(logging.WARNING, logger="storage.deliveries"):
        assert await guard.first_time({"trigger:z": 600})
        assert await guard.first_time({"trigger:z": 600}), "no way to know: through again"
    assert "could not check" in caplog.text


async def test_the_guard_reconnects_after_a_database_restart(db, guard, caplog) -> None:
    assert await guard.first_time({"trigger:r1": 600})
    await guard._connection.invalidate()  # what a restart does to the connection it keeps
    with caplog.at_level(logging.WARNING, logger="storage.deliveries"):
        await guard.first_time({"trigger:r2": 600})  # this one may go through unchecked...
    assert not await guard.first_time({"trigger:r1": 600}), "...the next is checked again"


async def test_concurrent_requests_share_statements_and_each_key_passes_once(db, guard) -> None:
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    keys = [f"trigger:{n % 30}" for n in range(60)]  # each key twice
    answers = await asyncio.gather(*(guard.first_time({key: 600}) for key in keys))
    assert sorted(key for key, first in zip(keys, answers, strict=True) if first) == sorted(set(keys))
    assert len(statements) < 10, "a few group statements, not sixty"


async def test_keys_are_written_in_one_global_order(db) -> None:
    """By ttl, then key, whatever order the requests came in: processes claiming overlapping keys
    at once take their row locks in one order and never wait on each other in a circle (the
    deadlock would fail both claims, and let both requests through)."""
    written: list[list[str]] = []

    def record(conn, cursor, statement, parameters, *args) -> None:
        if "slack_deliveries" in statement:
            written.append([p for p in parameters if isinstance(p, str)])

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        async with db.session() as session:
            requests = [{"trigger:b": 600, "click:z": 2}, {"event:a": 600, "click:y": 2}]
            assert await claim(session, requests) == [True, True]
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert written == [["click:y", "click:z"], ["event:a", "trigger:b"]]


async def test_two_processes_claiming_the_same_keys_at_once_handle_each_once(db, db_url, caplog) -> None:
    other = Database(db_url)  # another process's pools
    mine, theirs = DeliveryGuard(db, timeout=30), DeliveryGuard(other, timeout=30)
    try:
        keys = [f"event:Ev{n:03}" for n in range(40)]
        with caplog.at_level(logging.WARNING, logger="storage.deliveries"):
            answers = await asyncio.gather(
                *(mine.first_time({key: 600}) for key in keys),
                *(theirs.first_time({key: 600}) for key in reversed(keys)),
            )
        assert caplog.text == "", "no error, nothing let through unchecked"
        firsts = [key for key, first in zip(keys + keys[::-1], answers, strict=True) if first]
        assert sorted(firsts) == keys, "each key handled by exactly one of the two"
    finally:
        await mine.close()
        await theirs.close()
        await other.dispose()


async def test_the_database_fills_in_seen_at_itself(db) -> None:
    async with db.session() as session:
        await session.execute(Delivery.__table__.insert().values(key="event:default"))

        async def seen_before(seconds_ago: float) -> bool:
            query = select(func.count()).where(Delivery.seen_at < utc_seconds_ago(seconds_ago))
            return bool(await session.scalar(query))

        assert await seen_before(-5) and not await seen_before(5), "now, by the database's clock"


@pytest.mark.parametrize("ttl", [0.25, 2.0, 600.0])
async def test_a_claim_is_one_statement_new_or_not(db, ttl) -> None:
    """No SELECT before the INSERT, no UPDATE after it: one round trip besides the transaction's."""
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        statements.append(statement.split()[0].upper())

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        assert await claim_once(db, f"trigger:{ttl}", ttl)
        assert not await claim_once(db, f"trigger:{ttl}", ttl)
        await age(db, f"trigger:{ttl}", ttl + 1)
        statements.clear()
        assert await claim_once(db, f"trigger:{ttl}", ttl), "an expired key too"
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert statements == ["INSERT"]
