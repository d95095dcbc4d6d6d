"""The deploy service's upkeep (the reaper after a crash, retention), what it reads back (history,
estimates), and its event bus, on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from bot import errors
from bot.deploy.events import DeployCreated, DeployFinished, DeployStarted
from storage import repository as repo
from storage.models import Deploy, LogChunk, Status, utcnow
from tests.conftest import ADMIN, SCRIPTS, gone
from tests.engine.test_service import _service, wait_for_log, wait_for_status

# --- crash and reaper ------------------------------------------------------------------------------


async def test_reaper_ends_a_deploy_whose_heartbeat_stopped(service):
    async with service.db.session() as session:
        ghost = await repo.insert_deploy(session, environment="production", branch="main", deployed_by=ADMIN)
        await repo.transition(session, ghost.id, Status.RUNNING, started_at=utcnow() - timedelta(minutes=5))
        await repo.append_log(session, ghost.id, 0, b"[1/7] before the crash\n")
        await session.execute(
            update(Deploy).where(Deploy.id == ghost.id).values(heartbeat_at=utcnow() - timedelta(minutes=1))
        )
    events = []
    service.events.subscribe(events.append)
    assert await service.reap() == [ghost.id]
    done = await service.get(ghost.id)
    assert done.state is Status.FAILED
    assert done.error_message.startswith("interrupted")
    assert (await service.logs(ghost.id)).data == b"[1/7] before the crash\n"
    assert [type(e) for e in events] == [DeployFinished]
    assert await service.reap() == []


async def test_a_live_deploy_is_not_reaped(make_config):
    config = make_config(environments={"production": {"script": str(SCRIPTS / "sleepy.sh")}})
    async with _service(config) as owner, _service(config) as other:
        deploy = await owner.trigger("production", "main", user=ADMIN)
        await wait_for_status(owner, deploy.id, Status.RUNNING)
        await asyncio.sleep(config.bot.lease_seconds + 0.5)  # longer than a lease: renewals keep it
        assert await other.reap() == []
        assert (await other.get(deploy.id)).state is Status.RUNNING
        await owner.cancel(deploy.id, user=ADMIN)


async def test_a_killed_bot_leaves_a_deploy_the_next_bot_reaps(make_config, tmp_path):
    config = make_config(environments={"production": {"script": str(SCRIPTS / "sleepy.sh")}})
    toml = tmp_path / "crash.toml"
    toml.write_text(
        "[bot]\n"
        f'admins = ["{ADMIN}"]\ndatabase_url = "{config.database_url}"\n'
        "heartbeat_seconds = 0.5\nlease_seconds = 3\n"
        f'[environments.production]\nscript = "{SCRIPTS / "sleepy.sh"}"\n'
    )
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(toml), "deploy", "production", "main"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    async with _service(config) as service:
        async with asyncio.timeout(30):
            while not (page := await service.history()).items or page.items[0].state is not Status.RUNNING:
                await asyncio.sleep(0.1)
        deploy = page.items[0]
        await wait_for_log(service, deploy.id, b"[1/3] waiting")
        bot.send_signal(signal.SIGKILL)
        bot.wait()
        async with asyncio.timeout(30):
            while deploy.id not in await service.reap():
                await asyncio.sleep(0.5)
        done = await service.get(deploy.id)
        assert done.state is Status.FAILED and done.error_message.startswith("interrupted")
        log = (await service.logs(deploy.id)).data
        assert b"[1/3] waiting" in log
        # the script the dead bot orphaned was stopped by the reaper
        assert done.runner_pid == int(log.split(b"(pid ")[1].split(b")")[0])
        assert await gone(done.runner_pid)


# --- retention -------------------------------------------------------------------------------------


async def test_retention_clears_old_logs_and_soft_deletes_old_records(make_config):
    config = make_config(retention={"logs_days": 7, "records_days": 30})
    async with _service(config) as service:
        ids = {}
        async with service.db.session() as session:
            for name, age_days in (("ancient", 40), ("old", 10), ("fresh", 1)):
                row = await repo.insert_deploy(session, environment=name, branch="main", deployed_by=ADMIN)
                await repo.transition(session, row.id, Status.RUNNING)
                await repo.append_log(session, row.id, 0, f"log of {name}\n".encode())
                await repo.transition(session, row.id, Status.SUCCESS)
                stamp = utcnow() - timedelta(days=age_days)
                await session.execute(
                    update(Deploy).where(Deploy.id == row.id).values(created_at=stamp, completed_at=stamp)
                )
                ids[name] = row.id
            running = await repo.insert_deploy(session, environment="busy", branch="main", deployed_by=ADMIN)
            await session.execute(
                update(Deploy).where(Deploy.id == running.id).values(created_at=utcnow() - timedelta(days=99))
            )
        result = await service.cleanup()
        assert (result.logs_cleared, result.records_deleted) == (2, 1)

        with pytest.raises(errors.DeployNotFound):
            await service.get(ids["ancient"])
        assert all(d.id != ids["ancient"] for d in (await service.history()).items)
        old = await service.get(ids["old"])
        assert old.logs_cleared_at is not None
        assert (await service.logs(ids["old"])).data == b""
        assert (await service.logs(ids["fresh"])).data == b"log of fresh\n"
        assert (await service.get(running.id)).state is Status.PENDING
        async with service.db.session() as session:
            chunks = (await session.execute(select(func.count()).select_from(LogChunk))).scalar_one()
        assert chunks == 1
        again = await service.cleanup()
        assert (again.logs_cleared, again.records_deleted) == (0, 0)


# --- history ---------------------------------------------------------------------------------------


async def test_history_filters_pages_and_hides_deleted(service):
    async with service.db.session() as session:
        for i in range(25):
            row = await repo.insert_deploy(
                session, environment="production" if i % 2 else "staging", branch=f"b{i}", deployed_by=ADMIN
            )
            await repo.transition(session, row.id, Status.FAILED if i % 5 == 0 else Status.CANCELLED)
        await session.execute(update(Deploy).where(Deploy.branch == "b1").values(is_deleted="Y"))
    page = await service.history(page=1, page_size=10)
    assert page.total == 24 and page.pages == 3 and len(page.items) == 10
    assert [d.id for d in page.items] == sorted((d.id for d in page.items), reverse=True)
    prod_failed = await service.history("prod", "failed")
    assert {d.branch for d in prod_failed.items} == {"b5", "b15"}
    last = await service.history(page=3, page_size=10)
    assert len(last.items) == 4 and not last.has_next and last.has_prev


# --- estimates -------------------------------------------------------------------------------------


async def test_estimate_is_the_median_of_earlier_successes(service):
    async with service.db.session() as session:
        for seconds in (10, 30, 20, 500):
            row = await repo.insert_deploy(session, environment="production", branch="m", deployed_by=ADMIN)
            await repo.transition(session, row.id, Status.RUNNING)
            await repo.transition(session, row.id, Status.SUCCESS)
            await repo.update_deploy(session, row.id, duration=seconds)
    assert await service.estimate("production") == 25
    assert await service.estimate("staging") is None


# --- the event bus ---------------------------------------------------------------------------------


async def test_a_failing_observer_is_logged_and_ignored(service, caplog):
    seen = []

    def broken(event) -> None:
        raise RuntimeError("observer bug")

    service.events.subscribe(broken)
    service.events.subscribe(seen.append)
    with caplog.at_level(logging.ERROR, logger="bot.deploy.events"):
        deploy = await service.trigger("production", "main", user=ADMIN)
        await service.wait_idle()
    assert (await service.get(deploy.id)).state is Status.SUCCESS
    assert [type(e) for e in seen][:2] == [DeployCreated, DeployStarted]
    assert isinstance(seen[-1], DeployFinished) and seen[-1].deploy.state is Status.SUCCESS
    assert {e.deploy.id for e in seen} == {deploy.id}
    assert "observer bug" in caplog.text
