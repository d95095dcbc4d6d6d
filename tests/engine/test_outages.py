"""Real database outages in the middle of a deploy: nothing is lost, doubled or frozen.

PostgreSQL: a throwaway cluster of our own (tests/pgcluster.py) is stopped with `pg_ctl stop -m
fast` (every connection cut) while a deploy prints, and started again a few seconds later. SQLite:
another connection holds the write lock for longer than the busy timeout. Either way the deploy ends
`success`, its stored log byte-identical to what the script printed, its steps recorded; and an
outage shorter than the lease gets no deploy reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
import uuid

import pytest
from sqlalchemy.engine import make_url

from bot.config import parse_config
from bot.deploy.events import StepChanged
from storage.db import Database
from storage.models import Status, utcnow
from tests.conftest import ADMIN, SCRIPTS, _pg_exec
from tests.engine.test_faults import assert_stored_once, running_service
from tests.engine.test_service import wait_for_log
from tests.pgcluster import PgCluster, unavailable

pytestmark = pytest.mark.slow

OUTAGE_SECONDS = 3.0


@pytest.fixture(scope="module")
def pg_cluster():
    if reason := unavailable():
        pytest.skip(reason)
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def cluster_url(pg_cluster) -> str:
    """A fresh database on the throwaway cluster."""
    name = f"outage_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_exec(pg_cluster.url, f'CREATE DATABASE "{name}"'))
    return make_url(pg_cluster.url).set(database=name).render_as_string(hide_password=False)


def outage_config(tmp_path, url: str, **bot):
    raw = {
        "bot": {
            "admins": [ADMIN],
            "database_url": url,
            "heartbeat_seconds": 0.5,
            "lease_seconds": 3,
            **bot,
        },
        "environments": {"production": {"script": str(SCRIPTS / "chatty.sh")}},
    }
    return parse_config(raw, tmp_path / "deploybot.toml", {})


def retried(caplog) -> list[str]:
    """The deploy path's reports of writes that failed and were retried."""
    return [
        r.getMessage() for r in caplog.records if r.name == "bot.deploy.execution" and "retrying" in r.message
    ]


async def test_a_postgresql_outage_mid_deploy_loses_nothing(pg_cluster, cluster_url, tmp_path, caplog):
    caplog.set_level(logging.WARNING, "bot.deploy.execution")
    copy = tmp_path / "printed.log"
    async with running_service(outage_config(tmp_path, cluster_url), COPY_TO=str(copy)) as service:
        events = []
        service.events.subscribe(events.append)
        deploy = await service.trigger("production", "main", user=ADMIN)
        await wait_for_log(service, deploy.id, b"[2/5] step 2")
        await asyncio.to_thread(pg_cluster.stop, "fast")
        printed = copy.stat().st_size
        await asyncio.sleep(OUTAGE_SECONDS)
        assert copy.stat().st_size > printed, "the script was held up while the database was away"
        await asyncio.to_thread(pg_cluster.start)
        async with asyncio.timeout(60):
            await service.wait_idle()
        done = await assert_stored_once(service, deploy.id, copy.read_bytes())
        assert done.state is Status.SUCCESS, done.error_message
        assert (done.step_current, done.step_total, done.step_title) == (5, 5, "step 5")
        assert [e.step.number for e in events if isinstance(e, StepChanged)] == [1, 2, 3, 4, 5]
        assert retried(caplog), "no write met the outage"


async def test_an_outage_shorter_than_the_lease_reaps_nothing(pg_cluster, cluster_url, tmp_path):
    """Another bot's reaper, trying all along, finds the deploy's heartbeat fresh again once the
    database is back: the deploy goes on and ends as its script did."""
    config = outage_config(tmp_path, cluster_url, lease_seconds=4 * OUTAGE_SECONDS)
    environ = {"STEPS": "3", "BATCHES": "25", "PACE": "0.1"}
    async with running_service(config, **environ) as owner, running_service(config) as other:
        deploy = await owner.trigger("production", "main", user=ADMIN)
        await wait_for_log(owner, deploy.id, b"[1/3] step 1")
        reaped: list[int] = []
        stop = asyncio.Event()

        async def reaper() -> None:
            while not stop.is_set():
                with contextlib.suppress(Exception):  # it cannot reach the database either
                    reaped.extend(await other.reap())
                await asyncio.sleep(0.25)

        reaping = asyncio.create_task(reaper())
        try:
            await asyncio.to_thread(pg_cluster.stop, "fast")
            await asyncio.sleep(OUTAGE_SECONDS)
            await asyncio.to_thread(pg_cluster.start)
            back = utcnow()
            async with asyncio.timeout(30):  # the heartbeat resumes while the deploy still runs
                while (row := await other.get(deploy.id)).heartbeat_at <= back:
                    await asyncio.sleep(0.1)
            assert row.state is Status.RUNNING
            async with asyncio.timeout(60):
                await owner.wait_idle()
        finally:
            stop.set()
            await reaping
        assert reaped == []
        assert (await other.get(deploy.id)).state is Status.SUCCESS


def hold_write_lock(path: str, started: threading.Event, seconds: float) -> None:
    """Hold SQLite's write lock from another connection, as a long migration or a backup would."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        started.set()
        time.sleep(seconds)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def test_an_sqlite_write_lock_held_past_the_busy_timeout_loses_nothing(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "bot.deploy.execution")
    path = str(tmp_path / "deploybot.db")
    config = outage_config(tmp_path, f"sqlite+aiosqlite:///{path}", lease_seconds=30)
    copy = tmp_path / "printed.log"
    # A short busy timeout makes the lock fail the deploy's writes at once (the default, 10 s,
    # would have them wait it out): the retries, not SQLite's patience, carry the deploy through.
    db = Database(config.database_url, busy_timeout=0.2)
    environ = {"COPY_TO": str(copy), "BATCHES": "10"}
    async with running_service(config, db, **environ) as service:
        events = []
        service.events.subscribe(events.append)
        deploy = await service.trigger("production", "main", user=ADMIN)
        await wait_for_log(service, deploy.id, b"[2/5] step 2")
        started = threading.Event()
        holder = asyncio.create_task(asyncio.to_thread(hold_write_lock, path, started, OUTAGE_SECONDS))
        await asyncio.to_thread(started.wait, 10)
        printed = copy.stat().st_size
        await holder
        assert copy.stat().st_size > printed, "the script was held up while the database was locked"
        async with asyncio.timeout(60):
            await service.wait_idle()
        done = await assert_stored_once(service, deploy.id, copy.read_bytes())
        assert done.state is Status.SUCCESS, done.error_message
        assert (done.step_current, done.step_total) == (5, 5)
        assert [e.step.number for e in events if isinstance(e, StepChanged)] == [1, 2, 3, 4, 5]
        assert retried(caplog), "no write met the lock"
