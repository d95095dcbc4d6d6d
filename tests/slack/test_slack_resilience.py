"""Slack misbehaving never fails or blocks a deploy, and the final state always reaches the card;
who may act is decided by config admins and Slack user groups."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.console.workspace import Answer
from bot.i18n import t
from storage import repository as repo
from storage.models import Status, utcnow
from tests.fakeslack import FakeSlack
from tests.slackbot_fixtures import ADMIN, BOT_TOKEN, CHANNEL, GUEST, action_ids, texts


class OutageSlack(FakeSlack):
    """A FakeSlack whose Web API answers 503 while `down` is set."""

    down = False

    def intercept(self, method: str, params: dict[str, Any]) -> Answer | None:
        if self.down:
            return Answer(503, "<html><body>Service Unavailable</body></html>", content_type="text/html")
        return super().intercept(method, params)


async def test_429_storm_during_a_deploy_is_waited_out(start_bot) -> None:
    bot = await start_bot()
    bot.fake.fail("chat.postMessage", 429, retry_after=0, times=2)
    bot.fake.fail("chat.update", 429, retry_after=1, times=1)

    await bot.command("/deploy production main")
    deploy = await bot.finished()
    assert deploy.state is Status.SUCCESS

    assert sum(1 for call in bot.fake.calls if call.status == 429) == 3
    card = bot.card(deploy.id)
    assert "cancel_deploy" not in action_ids(card) and "view_logs" in action_ids(card)
    replies = bot.thread_replies(deploy.id)
    assert [f"{n}/7" in texts(reply) for n, reply in enumerate(replies[:7], start=1)] == [True] * 7
    assert f"<@{ADMIN}>" in texts(replies[-1])


async def test_slack_down_does_not_block_the_deploy_and_the_final_card_comes_later(start_bot) -> None:
    bot = await start_bot(fake=OutageSlack(), step_sleep="0.2")
    await bot.command("/deploy production main")
    deploy = await bot.deploy()
    await bot.wait_for(lambda: bot.has_card(deploy.id))

    bot.fake.down = True
    while not (deploy := await bot.service.get(deploy.id)).state.is_finished:
        await bot.service.wait_idle()
    assert deploy.state is Status.SUCCESS, "the deploy finished while Slack was down"
    assert len(bot.thread_replies(deploy.id)) < 8

    await bot.wait_for(lambda: any(call.status == 503 for call in bot.fake.calls))
    bot.fake.down = False
    await bot.settle()
    card = bot.card(deploy.id)
    assert "cancel_deploy" not in action_ids(card), "the card shows the final state"
    replies = bot.thread_replies(deploy.id)
    assert len(replies) == 8
    assert [f"{n}/7" in texts(reply) for n, reply in enumerate(replies[:7], start=1)] == [True] * 7


async def test_a_restarted_bot_ends_the_card_a_dead_bot_left_running(start_bot, db) -> None:
    # The dead bot had posted the card of a running deploy, then stopped beating.
    fake = await FakeSlack().start()
    posted = await AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url).chat_postMessage(
        channel=CHANNEL, text="部署中"
    )
    async with db.session() as session:
        row = await repo.insert_deploy(
            session, environment="production", branch="main", deployed_by=ADMIN, slack_channel=CHANNEL
        )
        await repo.transition(session, row.id, Status.RUNNING)
        stale = utcnow() - timedelta(minutes=5)
        await repo.update_deploy(session, row.id, slack_ts=posted["ts"], heartbeat_at=stale)

    bot = await start_bot(fake=fake)
    await bot.wait_for(lambda: bot.has_card(row.id) and bot.thread_replies(row.id))
    await bot.settle()
    deploy = await bot.service.get(row.id)
    assert deploy.state is Status.FAILED and deploy.error_message == t("zh", "outcome.interrupted")
    card = bot.card(row.id)
    assert card["ts"] == posted["ts"], "the old card is updated, not a new one posted"
    assert "cancel_deploy" not in action_ids(card)
    assert t("zh", "outcome.interrupted") in texts(bot.thread_replies(row.id)[-1])


class HeldAnswers(FakeSlack):
    """A FakeSlack that holds every response_url post until `release` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def _response_url(self, request):
        await self.release.wait()
        return await super()._response_url(request)


async def test_an_ack_does_not_wait_for_the_work_after_it(start_bot) -> None:
    bot = await start_bot(fake=HeldAnswers())
    reply = await asyncio.wait_for(bot.command("/deploy history"), 5)
    assert reply.status == 200 and not reply.body  # acked while the answer is still held
    url = bot.slack.last_response_url
    assert bot.fake.responses[url] == []
    bot.fake.release.set()
    await bot.wait_for(lambda: bot.fake.responses[url])
    assert bot.fake.responses[url][0]["response_type"] == "ephemeral"


async def test_rest_deploys_are_announced_in_the_notify_channel(start_bot) -> None:
    bot = await start_bot(bot={"notify_channel": "C0NOTIFY1"})
    deploy = await bot.service.trigger("production", user="api:ci", source="api")
    await bot.finished()
    assert bot.card(deploy.id)["channel"] == "C0NOTIFY1"
    assert (await bot.service.get(deploy.id)).slack_channel == "C0NOTIFY1"

    # a CLI deploy has no channel to go to: no message at all
    await bot.service.trigger("staging", user="ops", source="cli")
    await bot.finished(2)
    assert len([c for c in bot.calls("chat.postMessage") if not c.params.get("thread_ts")]) == 1


async def test_members_of_admin_groups_may_deploy_and_membership_is_cached(start_bot) -> None:
    bot = await start_bot(bot={"admins": [], "admin_groups": ["S0DEPLOYRS"]})
    bot.fake.set_group("S0DEPLOYRS", [GUEST])

    await bot.command("/deploy production main", user=GUEST)
    deploy = await bot.finished()
    assert deploy.deployed_by == GUEST

    reply = await bot.command("/deploy help", user=ADMIN)
    assert t("zh", "error.not_admin") in texts(reply.json())
    await bot.command("/deploy help", user=GUEST)
    assert len(bot.calls("usergroups.users.list")) == 1
