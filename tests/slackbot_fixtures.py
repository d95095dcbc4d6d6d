"""A running deploybot for the Slack tests: bot/app/server.py on a loopback port, its Web API pointed at a
FakeSlack, driven by signed requests the way Slack sends them.

    async def test_x(bot):
        await bot.command("/deploy production main")
        deploy = await bot.finished()
        assert len(bot.thread_replies(deploy.id)) == 8

tests/conftest.py loads this module as a plugin, so `bot` and `start_bot` are fixtures everywhere.
The database comes from the conftest fixtures, so every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.app.server import Server, start_server
from bot.console.driver import HttpReply, SlackDriver
from bot.console.ratelimits import SLACK_LIMITS
from bot.slack.notifier import Timing
from bot.slack.outbox import SLACK_PACING, UNPACED
from storage.models import Deploy
from tests.conftest import ADMIN, GUEST
from tests.fakeslack import FakeSlack

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_TOKEN = "xoxb-0000-test-deploybot"
APP_TOKEN = "xapp-1-A0DEPLOYB-0000-test"
CHANNEL = "C0DEPLOY1"
# The notifier's own coalescing, at half the production interval (1 s) so the suite stays quick,
# and a short back-off cap so the end of an outage in a test is noticed soon. The fake Slack has
# no rate limits unless a test asks (`start_bot(rate_limits=True)`), so neither has the bot.
TEST_TIMING = Timing(
    update_interval=0.5,
    tick_seconds=10.0,
    retry_initial=0.3,
    retry_cap=1.0,
    home_interval=0.5,
    pacing=UNPACED,
)
WAIT = 30.0

__all__ = ["ADMIN", "GUEST", "Bot", "bot", "start_bot", "texts"]


class Bot:
    """One running bot and the fake workspace around it."""

    def __init__(self, server: Server, fake: FakeSlack, slack: SlackDriver) -> None:
        self.server = server
        self.fake = fake
        self.slack = slack

    @property
    def service(self):
        return self.server.runtime.service

    @property
    def config(self):
        return self.server.runtime.config

    # --- what users do ------------------------------------------------------------------------

    async def command(self, text: str, *, user: str = ADMIN, channel: str | None = None) -> HttpReply:
        return await self.slack.command(text, user=user, channel=channel)

    async def answer(self, text: str, *, user: str = ADMIN, channel: str | None = None) -> dict:
        """What the user is shown for a command: the ack's body, or, after an empty ack, what the
        bot posted to the command's response_url."""
        reply = await self.command(text, user=user, channel=channel)
        assert reply.status == 200, reply
        if reply.body:
            return reply.json()
        url = self.slack.last_response_url
        await self.wait_for(lambda: self.fake.responses.get(url))
        return self.fake.responses[url][0]

    async def click(
        self, action_id: str, value: str | None = None, *, user: str = ADMIN, **kw: Any
    ) -> HttpReply:
        return await self.slack.click(action_id, value, user=user, **kw)

    async def submit(
        self, values: dict | None = None, *, user: str = ADMIN, view: dict | None = None
    ) -> HttpReply:
        return await self.slack.submit(values, user=user, view=view)

    async def home_opened(self, user: str = ADMIN) -> HttpReply:
        return await self.slack.home_opened(user=user)

    # --- waiting ------------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = WAIT) -> Any:
        """Wait until `predicate()` holds; it is re-checked after every Web API call the bot makes."""
        return await self.fake.wait_until(predicate, timeout)

    async def deploy(self, number: int = 1) -> Deploy:
        """The `number`-th deploy (1 = the first), once it exists."""
        async with asyncio.timeout(WAIT):
            while True:
                page = await self.service.history(page_size=100)
                if page.total >= number:
                    return sorted(page.items, key=lambda d: d.id)[number - 1]
                await asyncio.sleep(0.05)

    async def finished(self, number: int = 1) -> Deploy:
        """The `number`-th deploy once it ended and Slack was told everything about it."""
        deploy = await self.deploy(number)
        async with asyncio.timeout(WAIT):
            while not (deploy := await self.service.get(deploy.id)).state.is_finished:
                await asyncio.sleep(0.05)
        await self.settle()
        return deploy

    async def settle(self) -> None:
        async with asyncio.timeout(WAIT):
            await self.service.wait_idle()
            await self.server.slack.notifier.wait_idle()
            while self.server.slack.context.tasks:
                await asyncio.sleep(0.02)

    # --- what Slack shows ---------------------------------------------------------------------

    def card(self, deploy_id: int) -> dict:
        """The channel message of a deploy, as it looks now."""
        summary = f"deploy_{deploy_id}_summary"
        for message in self.fake.messages.values():
            if message.get("thread_ts") in (None, message["ts"]) and any(
                b.get("block_id") == summary for b in message.get("blocks") or []
            ):
                return {**message, "channel": self._channel_of(message)}
        raise AssertionError(f"no card for deploy #{deploy_id}")

    def has_card(self, deploy_id: int) -> bool:
        try:
            self.card(deploy_id)
        except AssertionError:
            return False
        return True

    def thread_replies(self, deploy_id: int) -> list[dict]:
        card = self.card(deploy_id)
        return self.fake.thread(card["channel"], card["ts"])

    def calls(self, method: str) -> list:
        return self.fake.calls_to(method)

    def _channel_of(self, message: dict) -> str:
        return next(channel for (channel, ts), m in self.fake.messages.items() if m is message)


def action_ids(message: dict) -> set[str]:
    return {
        element.get("action_id")
        for block in message.get("blocks") or []
        for element in [*(block.get("elements") or []), block.get("accessory") or {}]
        if element.get("action_id")
    }


def texts(thing: Any) -> str:
    """Every text of a message, view or block list, joined: what a user would read."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(thing)
    return "\n".join(found)


StartBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def start_bot(make_config) -> AsyncIterator[StartBot]:
    """Start a bot: `await start_bot(environments=..., bot=..., step_sleep="0.2", socket_mode=False,
    fake=FakeSlack subclass instance, rate_limits=True)`. `rate_limits`: the fake answers 429
    where Slack would (a new FakeSlack with SLACK_LIMITS) and the bot paces itself as in production."""
    running: list[tuple[Bot, FakeSlack]] = []

    async def start(
        *,
        environments: dict | None = None,
        bot: dict | None = None,
        step_sleep: str = "0",
        socket_mode: bool = False,
        secret: str | None = SECRET,
        fake: FakeSlack | None = None,
        rate_limits: bool = False,
    ) -> Bot:
        fake = await (fake or FakeSlack(rate_limits=SLACK_LIMITS if rate_limits else None)).start()
        timing = dataclasses.replace(TEST_TIMING, pacing=SLACK_PACING) if rate_limits else TEST_TIMING
        environ = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_API_URL": fake.api_url}
        environ.update({"SLACK_APP_TOKEN": APP_TOKEN} if socket_mode else {"SLACK_SIGNING_SECRET": SECRET})
        config = make_config(environments=environments, bot=bot, environ=environ)
        base_env = {**os.environ, "STEP_SLEEP": step_sleep}
        try:
            server = await start_server(config, "127.0.0.1", 0, base_env=base_env, timing=timing)
        except BaseException:
            await fake.close()
            raise
        driver = SlackDriver(f"http://127.0.0.1:{server.port}/slack/events", fake, secret=secret)
        started = Bot(server, fake, driver)
        running.append((started, fake))
        return started

    yield start
    for started, fake in running:
        await started.slack.close()
        await started.server.close()
        await fake.close()
        assert fake.violations == [], f"the bot sent Block Kit that Slack refuses: {fake.violations}"


@pytest.fixture
async def bot(start_bot: StartBot) -> Bot:
    return await start_bot()
