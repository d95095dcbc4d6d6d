"""A failed database write never loses, doubles or freezes a deploy (SQLite and PostgreSQL).

Each write on a deploy's path (started, a step, a reported commit, a log chunk, the final state) is
made to fail once, either before it commits (the database was away) or after (it committed, but
its reply was lost): the deploy still ends as its script did, with its whole log stored once, its
steps and commit recorded, and each event published once. Real outages are in test_outages.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from bot.deploy import execution
from bot.deploy.events import DeployFinished, DeployStarted, StepChanged
from bot.deploy.service import DeployService
from storage import repository as repo
from storage.db import Database
from storage.models import Deploy, LogChunk, Status
from tests.conftest import ADMIN, SCRIPTS

SHA = "c0ffee" + "0" * 34
FAST = {"STEPS": "3", "BATCHES": "2", "PACE": "0.05"}


class running_service:
    """A started DeployService whose scripts get `environ`, closed on exit."""

    def __init__(self, config, db: Database | None = None, **environ: str) -> None:
        self.config = config
        self.db = db or Database(config.database_url)
        self.environ = {**os.environ, **environ}

    async def __aenter__(self) -> DeployService:
        self.service = DeployService(self.config, self.db, base_env=self.environ)
        await self.service.start()
        return self.service

    async def __aexit__(self, *exc) -> None:
        await self.service.close()
        await self.db.dispose()


def chatty_config(make_config, **environment):
    return make_config(environments={"production": {"script": str(SCRIPTS / "chatty.sh"), **environment}})


async def assert_stored_once(service: DeployService, deploy_id: int, printed: bytes) -> Deploy:
    """The deploy's log is exactly what its script printed, in contiguous chunks stored once each."""
    done = await service.get(deploy_id)
    whole = b"".join([piece async for piece in service.iter_log(deploy_id)])
    assert whole == printed
    async with service.db.session() as session:
        rows = (
            await session.execute(
                select(LogChunk.offset, LogChunk.data)
                .where(LogChunk.deploy_id == deploy_id)
                .order_by(LogChunk.offset)
            )
        ).all()
    offset = 0
    for start, data in rows:
        assert start == offset, "chunks overlap or leave a gap"
        offset += len(data)
    assert offset == done.log_size == len(printed)
    return done


def lost_connection() -> OperationalError:
    return OperationalError("injected", {}, ConnectionResetError("connection reset by peer"))


def fail_once(monkeypatch, name: str, when: Callable[..., bool], *, lost_reply: bool) -> list[str]:
    """Make the first call of `repo.<name>` that `when` picks fail: before anything is written,
    or (`lost_reply`) after its transaction committed. Returns a list that records the failure."""
    real = getattr(repo, name)
    failed: list[str] = []

    async def faulty(session, *args, **kwargs):
        if failed or not when(*args, **kwargs):
            return await real(session, *args, **kwargs)
        failed.append(name)
        if lost_reply:
            await real(session, *args, **kwargs)
            await session.commit()
        raise lost_connection()

    monkeypatch.setattr(repo, name, faulty)
    return failed


FAULTS = {
    "started": ("claim", lambda *_, **__: True),
    "step": ("update_deploy", lambda _id, **fields: "step_current" in fields),
    "commit": ("update_deploy", lambda _id, **fields: "commit_hash" in fields),
    "chunk": ("append_log", lambda *_, **__: True),
    "final": ("transition", lambda _id, to, **_: to.is_finished),
}


@pytest.mark.parametrize("lost_reply", [False, True], ids=["refused", "lost-reply"])
@pytest.mark.parametrize("write", list(FAULTS))
async def test_a_write_that_fails_once_changes_nothing(make_config, tmp_path, monkeypatch, write, lost_reply):
    copy = tmp_path / "printed.log"
    config = chatty_config(make_config)
    async with running_service(config, COPY_TO=str(copy), REPORT_COMMIT=SHA, **FAST) as service:
        events = []
        service.events.subscribe(events.append)
        name, when = FAULTS[write]
        failed = fail_once(monkeypatch, name, when, lost_reply=lost_reply)
        deploy = await service.trigger("production", "main", user=ADMIN)
        async with asyncio.timeout(30):
            await service.wait_idle()
        assert failed, "the fault was never injected"
        done = await assert_stored_once(service, deploy.id, copy.read_bytes())
        assert done.state is Status.SUCCESS, done.error_message
        assert (done.step_current, done.step_total, done.step_title) == (3, 3, "step 3")
        assert done.commit_hash == SHA
        kinds = [type(e) for e in events if e.deploy.id == deploy.id]
        assert kinds.count(DeployStarted) == 1 and kinds.count(DeployFinished) == 1
        assert [e.step.number for e in events if isinstance(e, StepChanged)] == [1, 2, 3]


async def test_the_reader_keeps_reading_while_a_step_write_waits(make_config, tmp_path, monkeypatch):
    """A step write that hangs (a locked table, a slow failover) holds neither the output nor the
    log: what the script prints after the marker is stored while the step waits."""
    copy = tmp_path / "printed.log"
    gate = asyncio.Event()
    real = repo.update_deploy

    async def slow(session, deploy_id, **fields):
        if fields.get("step_current") == 2:
            await gate.wait()
        return await real(session, deploy_id, **fields)

    monkeypatch.setattr(repo, "update_deploy", slow)
    config = chatty_config(make_config)
    async with running_service(config, COPY_TO=str(copy), **FAST) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        async with asyncio.timeout(20):
            while b"[3/3] step 3" not in (await service.logs(deploy.id)).data:
                await asyncio.sleep(0.05)
        assert (await service.get(deploy.id)).step_current == 1  # step 2 still waits
        gate.set()
        async with asyncio.timeout(20):
            await service.wait_idle()
        done = await assert_stored_once(service, deploy.id, copy.read_bytes())
        assert done.state is Status.SUCCESS and done.step_current == 3


async def test_shutting_down_bounds_the_retries_of_a_database_that_stays_away(
    make_config, tmp_path, monkeypatch
):
    """Only the bot stopping ends the retries: then it gives up after a grace period, and the
    deploy is left to the next bot's reaper (its heartbeat has stopped)."""
    monkeypatch.setattr(execution, "SHUTDOWN_GRACE", 0.5)
    config = chatty_config(make_config)
    async with running_service(config, **{**FAST, "PACE": "1"}) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        async with asyncio.timeout(20):
            while (await service.get(deploy.id)).state is not Status.RUNNING:
                await asyncio.sleep(0.05)

        async def away(*args, **kwargs):
            raise lost_connection()

        for name in ("append_log", "update_deploy", "transition"):
            monkeypatch.setattr(repo, name, away)
        async with asyncio.timeout(10):
            await service.close()
        assert (await service.get(deploy.id)).state is Status.RUNNING


async def test_a_script_cannot_override_the_commit_the_bot_pinned(make_config, tmp_path, git_repo):
    config = chatty_config(make_config, repo=str(git_repo.path))
    async with running_service(config, REPORT_COMMIT=git_repo.first, **FAST) as service:
        deploy = await service.trigger("production", "main", user=ADMIN)
        await service.wait_idle()
        done = await service.get(deploy.id)
        assert done.state is Status.SUCCESS
        assert done.commit_hash == git_repo.second  # main, as resolved: not what the script said
        assert f"DEPLOY_COMMIT={git_repo.first}".encode() in (await service.logs(deploy.id)).data


async def test_a_chunk_written_twice_is_stored_once(db):
    async with db.session() as session:
        deploy = await repo.insert_deploy(session, environment="production", branch="main", deployed_by=ADMIN)
        assert await repo.append_log(session, deploy.id, 0, b"first line\n") == 11
        # the same chunk again (its first commit's reply was lost): stored already
        assert await repo.append_log(session, deploy.id, 0, b"first line\n") == 11
        # a retry that carries more output than the first attempt: the stored prefix counts
        assert await repo.append_log(session, deploy.id, 0, b"first line\nsecond line\n") == 11
        assert await repo.append_log(session, deploy.id, 11, b"second line\n") == 12
        with pytest.raises(repo.LogConflict):
            await repo.append_log(session, deploy.id, 11, b"other bytes\n")
    async with db.session() as session:
        row = await repo.get_deploy(session, deploy.id)
        assert row.log_size == 23
        assert (await repo.read_log(session, row, 0, 100)).data == b"first line\nsecond line\n"
        chunks = (await session.execute(select(LogChunk.offset).where(LogChunk.deploy_id == deploy.id))).all()
        assert sorted(offset for (offset,) in chunks) == [0, 11]


def test_the_chatty_script_copies_what_it_prints(tmp_path):
    """The fault tests compare the stored log with this copy: it must be what the pipe carried."""
    copy = tmp_path / "copy.log"
    env = {**os.environ, "COPY_TO": str(copy), **FAST, "PACE": "0"}
    printed = subprocess.run([SCRIPTS / "chatty.sh"], env=env, capture_output=True, check=True).stdout
    assert printed == Path(copy).read_bytes() and printed.endswith(b"no newline at the end")
