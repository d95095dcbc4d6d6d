"""`/deploy runners` end to end (DESIGN §12): a signed slash command to the real server, answered
through the response_url with the live processes on the database; a second process on the same
database appears with the environments it runs, a draining one is marked."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from bot.config import ConfigError, parse_config
from bot.deploy.service import DeployService
from bot.i18n import t
from bot.slack.grammar import RESERVED_WORDS
from storage.db import Database
from tests.conftest import SCRIPTS
from tests.slackbot_fixtures import WAIT, Bot, texts

StartOther = Callable[..., Awaitable[DeployService]]


def sections(answer: dict) -> list[str]:
    return [b["text"]["text"] for b in answer["blocks"] if b.get("block_id", "").startswith("runner_")]


@pytest.fixture
async def start_other(make_config) -> AsyncIterator[StartOther]:
    """Another bot process on the test database: `await start_other(runs={"staging"}, role="worker")`.
    Its config may know environments the bot's does not (`environments=`)."""
    started: list[tuple[DeployService, Database]] = []

    async def start(
        *, runs: set[str], role: str = "worker", environments: dict | None = None
    ) -> DeployService:
        config = dataclasses.replace(make_config(environments=environments), runs=frozenset(runs))
        db = Database(config.database_url)
        service = DeployService(config, db, base_env=dict(os.environ), role=role)
        started.append((service, db))
        await service.start()
        return service

    yield start
    for service, db in started:
        await service.close()
        await db.dispose()


async def until_draining(bot: Bot, runner_id: str) -> None:
    async with asyncio.timeout(WAIT):
        while not any(r.runner_id == runner_id and r.draining for r in await bot.service.runners()):
            await asyncio.sleep(0.05)


async def test_runners_lists_this_process_with_its_environments(bot) -> None:
    answer = await bot.answer("/deploy runners")
    assert answer["response_type"] == "ephemeral"
    assert t("zh", "ui.runners.title") in texts(answer)
    [this] = sections(answer)
    assert "*服务进程*" in this and f"PID {os.getpid()}" in this
    assert "*当前进程*" in this
    assert "生产环境 (`production`), 预发布环境 (`staging`)" in this
    assert bot.service.runner_id.split("/")[1] not in texts(answer), "the boot id is not shown"


async def test_a_second_process_for_other_environments_appears_and_draining_is_marked(
    bot, start_other
) -> None:
    environments = {
        "staging": {"label": "预发布环境", "script": str(SCRIPTS / "steps.sh")},
        "batch": {"script": str(SCRIPTS / "steps.sh")},  # this bot's config does not know it
    }
    other = await start_other(runs={"staging", "batch"}, environments=environments)

    answer = await bot.answer("/deploy runners")
    this, worker = sections(answer)  # oldest first
    assert "*当前进程*" in this and "*服务进程*" in this
    assert "*执行进程*" in worker and "当前进程" not in worker
    assert "`batch`, 预发布环境 (`staging`)" in worker and "production" not in worker
    assert "排空中" not in texts(answer)

    other.drain()
    await until_draining(bot, other.runner_id)
    answer = await bot.answer("/deploy runners")
    this, worker = sections(answer)
    assert worker.startswith(":warning:") and "*排空中*" in worker
    assert "排空中" not in this


async def test_runners_in_english(start_bot) -> None:
    bot = await start_bot(bot={"locale": "en"})
    answer = await bot.answer("/deploy runners")
    [this] = sections(answer)
    assert "*server*" in this and "*this process*" in this
    assert "Runs: 生产环境 (`production`), 预发布环境 (`staging`)" in this
    assert "Bot processes" in texts(answer)


async def test_help_lists_runners_and_extra_words_are_refused(bot) -> None:
    assert t("zh", "cmd.help.runners") in texts(await bot.answer("/deploy help"))
    refused = texts(await bot.answer("/deploy runners now"))
    assert "`now`" in refused and "/deploy runners" in refused


@pytest.mark.parametrize(
    "environment",
    [{"runners": {"script": "steps.sh"}}, {"production": {"script": "steps.sh", "aliases": ["Runners"]}}],
)
def test_runners_cannot_name_an_environment(environment) -> None:
    assert "runners" in RESERVED_WORDS
    raw = {"bot": {"admins": ["U0ADMIN01"]}, "environments": environment}
    with pytest.raises(ConfigError, match="'runners' is a /deploy sub-command"):
        parse_config(raw, SCRIPTS / "deploybot.toml", {}, reserved_words=RESERVED_WORDS)
