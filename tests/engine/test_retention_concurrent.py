"""Retention run by every process at once (DESIGN §12: each runs the job at the same cron time):
every due row is cleared and soft-deleted by exactly one of them, and counted once, on SQLite (one
file, several services) and on PostgreSQL (several services, and several `deploybot cleanup`
processes)."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text

from bot.config import Config
from bot.deploy.queries import CleanupResult
from bot.deploy.service import DeployService
from bot.i18n import t
from storage.db import Database
from storage.models import Deploy, LogChunk, utcnow
from tests.conftest import ADMIN, SCRIPTS

ROWS = 3000
OLD = 2000  # the first OLD rows are past records_days too; the others only lose their logs
RETENTION = {"logs_days": 7, "records_days": 30}


async def add_old_deploys(db: Database, rows: int = ROWS, old: int = OLD) -> None:
    """`rows` finished deploys whose logs are due (a legacy log and a chunk each), the first `old`
    of them old enough to be soft-deleted as well."""
    now = utcnow()
    deploys = []
    for n in range(rows):
        stamp = now - timedelta(days=40 if n < old else 10)
        deploys.append(
            {
                "environment": "production",
                "branch": "main",
                "deployed_by": ADMIN,
                "status": "success",
                "logs": f"log of {n}\n",
                "started_at": stamp,
                "completed_at": stamp,
                "created_at": stamp,
                "updated_at": stamp,
                "log_size": 6,
            }
        )
    async with db.session() as session:
        await session.execute(insert(Deploy), deploys)
        ids = (await session.execute(select(Deploy.id))).scalars().all()
        await session.execute(
            insert(LogChunk), [{"deploy_id": i, "offset": 0, "data": b"chunk\n"} for i in ids]
        )


async def cleared_stamps(db: Database) -> dict[int, object]:
    async with db.session() as session:
        query = select(Deploy.id, Deploy.logs_cleared_at).where(Deploy.logs_cleared_at.is_not(None))
        return {deploy_id: stamp for deploy_id, stamp in await session.execute(query)}


async def assert_all_done(db: Database, rows: int = ROWS, old: int = OLD) -> None:
    async with db.session() as session:
        count = select(func.count()).select_from(Deploy)
        assert (await session.execute(count.where(Deploy.logs_cleared_at.is_not(None)))).scalar_one() == rows
        assert (await session.execute(count.where(Deploy.logs.is_not(None)))).scalar_one() == 0
        assert (await session.execute(count.where(Deploy.is_deleted == "Y"))).scalar_one() == old
        chunks = select(func.count()).select_from(LogChunk)
        assert (await session.execute(chunks)).scalar_one() == 0


@asynccontextmanager
async def services(config: Config, count: int) -> AsyncIterator[list[DeployService]]:
    """`count` services, each with its own engine and connections, as if in as many processes."""
    started = [DeployService(config, Database(config.database_url)) for _ in range(count)]
    try:
        yield started
    finally:
        for service in started:
            await service.db.dispose()


def totals(results: list[CleanupResult]) -> tuple[int, int]:
    return sum(r.logs_cleared for r in results), sum(r.records_deleted for r in results)


async def test_services_running_retention_at_once_clear_each_row_once(make_config):
    config = make_config(retention=RETENTION)
    async with services(config, 3) as running:
        await running[0].db.upgrade()
        await add_old_deploys(running[0].db)
        # small batches: many transactions each, interleaved between the three
        results = await asyncio.gather(*(s.cleanup(logs_batch=100, records_batch=100) for s in running))
        assert totals(results) == (ROWS, OLD)
        if not running[0].db.is_sqlite:  # SQLite's writes take turns: one may well win them all
            assert sum(1 for r in results if r.logs_cleared) > 1, (
                "one service did all the work: nothing ran at once"
            )
        await assert_all_done(running[0].db)
        stamps = await cleared_stamps(running[0].db)

        again = await asyncio.gather(*(s.cleanup() for s in running))
        assert totals(again) == (0, 0)
        assert await cleared_stamps(running[0].db) == stamps  # not set a second time


async def test_services_with_the_default_batches_clear_each_row_once(make_config):
    config = make_config(retention=RETENTION)
    async with services(config, 3) as running:
        await running[0].db.upgrade()
        await add_old_deploys(running[0].db)
        results = await asyncio.gather(*(s.cleanup() for s in running))
        assert totals(results) == (ROWS, OLD)
        await assert_all_done(running[0].db)


# --- several processes -----------------------------------------------------------------------------


def cleanup_toml(tmp_path: Path, database_url: str) -> str:
    path = tmp_path / "cleanup.toml"
    path.write_text(
        f'[bot]\nadmins = ["{ADMIN}"]\ndatabase_url = "{database_url}"\nlocale = "en"\n'
        f"[retention]\nlogs_days = {RETENTION['logs_days']}\nrecords_days = {RETENTION['records_days']}\n"
        f'[environments.production]\nscript = "{SCRIPTS / "steps.sh"}"\n'
    )
    return str(path)


def printed_counts(output: str) -> tuple[int, int]:
    """The counts of the `cleanup.done` line `deploybot cleanup` prints."""
    line = re.escape(t("en", "cleanup.done", logs="LOGS", records="RECORDS"))
    found = re.search(line.replace("LOGS", r"(\d+)").replace("RECORDS", r"(\d+)"), output)
    assert found, output
    return int(found[1]), int(found[2])


async def waiting_on_deploys(db: Database) -> int:
    """How many sessions wait for a lock on deploy_history."""
    async with db.session() as session:
        query = text(
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'deploy_history'::regclass"
        )
        return (await session.execute(query)).scalar_one()


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_cleanup_processes_started_at_once_clear_each_row_once(make_config, tmp_path):
    """Three `deploybot cleanup` processes on one PostgreSQL database. The table is locked until all
    three wait for it, so their batches really run at once; their printed counts add up to the rows."""
    config = make_config(retention=RETENTION)
    rows, old = 30_000, 20_000  # a few batches each, at the default batch sizes
    db = Database(config.database_url)
    try:
        await db.upgrade()
        await add_old_deploys(db, rows, old)
        command = [
            sys.executable,
            "-m",
            "bot",
            "--config",
            cleanup_toml(tmp_path, config.database_url),
            "cleanup",
        ]
        async with db.engine.connect() as gate:
            await gate.execute(text("LOCK TABLE deploy_history IN EXCLUSIVE MODE"))
            children = [
                subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(3)
            ]
            try:
                async with asyncio.timeout(60):
                    while await waiting_on_deploys(db) < 3:
                        assert all(child.poll() is None for child in children), "a cleanup ended early"
                        await asyncio.sleep(0.1)
            finally:
                await gate.rollback()  # all three go at once
        outputs = [await asyncio.to_thread(child.communicate, timeout=120) for child in children]
        for child, (_, err) in zip(children, outputs, strict=True):
            assert child.returncode == 0, err
        counts = [printed_counts(out) for out, _ in outputs]
        assert (sum(c[0] for c in counts), sum(c[1] for c in counts)) == (rows, old), counts
        await assert_all_done(db, rows, old)
    finally:
        await db.dispose()
