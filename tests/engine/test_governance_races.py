"""Races between governance moves, on a real database (SQLite and PostgreSQL) with real scripts: a
lock taken while someone else's deploy waits in the queue keeps it waiting until unlock; a cancel
aimed at a queued deploy that starts at that moment stops the started deploy instead."""

from __future__ import annotations

import asyncio

import pytest

from storage.models import Status
from tests.conftest import ADMIN
from tests.engine.test_queue import BY_BRANCH, OTHER
from tests.engine.test_service import _service, script, wait_for_status


@pytest.fixture
def config(make_config, tmp_path):
    production = {"script": script(tmp_path, "by_branch.sh", BY_BRANCH)}
    return make_config(environments={"production": production})


async def stays(service, deploy_id: int, status: Status, seconds: float) -> None:
    """The deploy is still `status` after `seconds` (several turns of the queue's loop)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + seconds
    while loop.time() < until:
        assert (await service.get(deploy_id)).state is status
        await asyncio.sleep(0.2)


async def test_a_lock_taken_while_a_deploy_waits_in_the_queue_holds_it_until_unlock(config):
    async with _service(config) as service:
        holder = await service.trigger("production", "slow", user=ADMIN)
        await wait_for_status(service, holder.id, Status.RUNNING)
        waiting = await service.trigger("production", "main", user=OTHER, queue=True)
        assert waiting.state is Status.QUEUED
        await service.locks.lock("production", user=ADMIN, duration="1h", reason="db migration")
        await service.cancel(holder.id, user=ADMIN)
        await wait_for_status(service, holder.id, Status.CANCELLED)
        await stays(service, waiting.id, Status.QUEUED, 3.0)  # free, but locked by someone else
        await service.locks.unlock("production", user=ADMIN)
        done = await wait_for_status(service, waiting.id, Status.SUCCESS)
        assert done.deployed_by == OTHER


async def test_the_lock_holders_own_queued_deploy_goes_on(config):
    async with _service(config) as service:
        holder = await service.trigger("production", "slow", user=OTHER)
        await wait_for_status(service, holder.id, Status.RUNNING)
        mine = await service.trigger("production", "main", user=ADMIN, queue=True)
        await service.locks.lock("production", user=ADMIN, duration="30m", reason="")
        await service.cancel(holder.id, user=OTHER)
        await wait_for_status(service, mine.id, Status.SUCCESS)


async def test_cancelling_a_queued_deploy_that_just_started_stops_it(config, monkeypatch):
    async with _service(config) as service:
        holder = await service.trigger("production", "slow", user=ADMIN)
        await wait_for_status(service, holder.id, Status.RUNNING)
        waiting = await service.trigger("production", "slow-too", user=ADMIN, queue=True)
        queued_view = await service.get(waiting.id)  # what the clicker's card showed: queued
        await service.cancel(holder.id, user=ADMIN)
        await wait_for_status(service, waiting.id, Status.RUNNING)  # it started meanwhile
        real_get = service.get
        calls = []

        async def stale_first(deploy_id: int):
            calls.append(deploy_id)
            return queued_view if len(calls) == 1 else await real_get(deploy_id)

        monkeypatch.setattr(service, "get", stale_first)
        await service.cancel(waiting.id, user=ADMIN)  # 取消排队, pressed as it started
        monkeypatch.setattr(service, "get", real_get)
        done = await wait_for_status(service, waiting.id, Status.CANCELLED)
        assert done.cancelled_by == ADMIN and done.started_at is not None
