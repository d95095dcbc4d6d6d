"""Several bot processes on one database handle each Slack request once (handlers/middleware.py,
storage/deliveries.py).

Two real servers (bot/app/server.py), each with its own database pools and its own memory, share a
database and one fake workspace; the same signed request reaches both, as it does behind a load
balancer when Slack retries, or when a user double-clicks onto two replicas.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs

import pytest
from sqlalchemy import event, literal, select, text, update

from bot.console.payloads import (
    app_home_opened_event,
    event_callback,
    new_trigger_id,
    slash_command_form,
    socket_envelope,
)
from bot.i18n import t
from handlers.middleware import DOUBLE_CLICK_SECONDS
from storage import deliveries
from storage.db import Database
from storage.deliveries import Delivery, DeliveryGuard, utc_seconds_ago
from storage.models import Status
from tests.fakeslack import FakeSlack
from tests.slackbot_fixtures import ADMIN, CHANNEL, Bot, texts


@pytest.fixture(autouse=True)
def guard_on_sqlite_too(monkeypatch) -> None:
    """Several processes share PostgreSQL only (DESIGN §12): with SQLite the guard asks nothing
    by default. Turned on here, the same tests prove it holds on SQLite too."""
    monkeypatch.setattr(DeliveryGuard, "on_sqlite", True)


async def two_bots(start_bot, **options) -> tuple[Bot, Bot]:
    fake = await FakeSlack().start()
    return await start_bot(fake=fake, **options), await start_bot(fake=fake, **options)


def trigger_of(body: bytes) -> str:
    return parse_qs(body.decode())["trigger_id"][0]


async def age(db: Database, key: str, seconds: float) -> None:
    async with db.session() as session:
        await session.execute(
            update(Delivery).where(Delivery.key == key).values(seen_at=utc_seconds_ago(literal(seconds)))
        )


def publishes(bot: Bot) -> list:
    return [c for c in bot.calls("views.publish") if c.params.get("user_id") == ADMIN]


async def test_a_command_reaching_two_bots_is_answered_and_deployed_once(start_bot, caplog) -> None:
    a, b = await two_bots(start_bot)
    caplog.set_level(logging.INFO, logger="handlers.middleware")

    # help is answered in the ack itself: whoever handles it answers; the other acks empty
    body = a.slack.command_body("help", user=ADMIN, channel=CHANNEL)
    replies = await asyncio.gather(a.slack.post(body), b.slack.post(body))
    assert [r.status for r in replies] == [200, 200]
    assert sorted(bool(r.body) for r in replies) == [False, True]
    assert t("zh", "cmd.help.rollback") in texts([r.json() for r in replies if r.body])

    body = a.slack.command_body("production main", user=ADMIN, channel=CHANNEL)
    await asyncio.gather(a.slack.post(body), b.slack.post(body))
    deploy = await a.finished()
    await b.settle()
    assert deploy.state is Status.SUCCESS
    assert (await a.service.history()).total == 1
    top_level = [c for c in a.calls("chat.postMessage") if not c.params.get("thread_ts")]
    assert len(top_level) == 1
    assert len(a.thread_replies(deploy.id)) == 8, "one card, one thread: one process tells Slack"

    body = a.slack.command_body("history", user=ADMIN, channel=CHANNEL)
    url = a.slack.last_response_url
    await asyncio.gather(a.slack.post(body), b.slack.post(body))
    await a.wait_for(lambda: a.fake.responses[url])
    await a.settle()
    await b.settle()
    assert len(a.fake.responses[url]) == 1, "one answer to one command"
    assert caplog.text.count("dropped a repeated request") == 3


async def test_a_retried_event_reaching_the_other_bot_is_handled_once(start_bot) -> None:
    a, b = await two_bots(start_bot)
    event = app_home_opened_event(ADMIN, "D0DEPLOYA1")
    await a.slack.event(event, event_id="Ev0REPLICA1")
    await b.slack.event(event, event_id="Ev0REPLICA1", retry_num=1)
    await asyncio.gather(
        a.slack.event(event, event_id="Ev0REPLICA2"), b.slack.event(event, event_id="Ev0REPLICA2")
    )
    await a.wait_for(lambda: len(publishes(a)) == 2)
    await a.settle()
    await b.settle()
    assert len(publishes(a)) == 2, "two events, each published once"


async def test_a_double_click_onto_two_bots_opens_one_modal_and_two_seconds_later_another(
    start_bot,
) -> None:
    a, b = await two_bots(start_bot)
    await a.home_opened(ADMIN)
    await a.wait_for(lambda: a.fake.home(ADMIN))
    home = a.fake.home(ADMIN)

    clicks = await asyncio.gather(
        a.click("open_deploy_modal", view=home), b.click("open_deploy_modal", view=home)
    )
    assert [c.status for c in clicks] == [200, 200]
    await a.wait_for(lambda: a.calls("views.open"))
    await a.settle()
    await b.settle()
    assert len(a.calls("views.open")) == 1

    await asyncio.sleep(DOUBLE_CLICK_SECONDS + 0.2)  # the double-click window has passed
    await b.click("open_deploy_modal", view=home)
    await a.wait_for(lambda: len(a.calls("views.open")) == 2)


async def test_a_redelivery_is_dropped_for_ten_minutes_then_handled_again(start_bot) -> None:
    a, b = await two_bots(start_bot)
    db = a.server.runtime.db
    body = a.slack.command_body("help", user=ADMIN, channel=CHANNEL)
    assert (await a.slack.post(body)).body
    await age(db, f"trigger:{trigger_of(body)}", 590)
    assert not (await b.slack.post(body)).body, "seen by the other bot within ten minutes"

    body = a.slack.command_body("help", user=ADMIN, channel=CHANNEL)
    assert (await a.slack.post(body)).body
    await age(db, f"trigger:{trigger_of(body)}", 610)
    assert (await b.slack.post(body)).body, "seen by the other bot, but expired: a new request"


async def test_a_repeat_to_the_same_bot_costs_no_query_and_a_request_one_per_key(start_bot) -> None:
    a, _ = await two_bots(start_bot)
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        if "slack_deliveries" in statement:
            statements.append(statement)

    engine = a.server.runtime.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        body = a.slack.command_body("help", user=ADMIN, channel=CHANNEL)
        assert (await a.slack.post(body)).body
        assert not (await a.slack.post(body)).body
        assert len(statements) == 1

        await a.home_opened(ADMIN)  # an event: one key
        await a.wait_for(lambda: a.fake.home(ADMIN))
        assert len(statements) == 2
        await a.click("open_deploy_modal", view=a.fake.home(ADMIN))  # a click and its trigger
        await a.wait_for(lambda: a.calls("views.open"))
        assert len(statements) == 4
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_without_the_database_requests_go_through_and_a_deploy_still_starts_once(
    start_bot, caplog
) -> None:
    a, b = await two_bots(start_bot)
    async with a.server.runtime.db.session() as session:
        await session.execute(text("DROP TABLE slack_deliveries"))

    with caplog.at_level(logging.WARNING, logger="storage.deliveries"):
        body = a.slack.command_body("help", user=ADMIN, channel=CHANNEL)
        replies = await asyncio.gather(a.slack.post(body), b.slack.post(body))
        assert all(r.status == 200 and r.body for r in replies), "both answer: nothing can tell"

        body = a.slack.command_body("production main", user=ADMIN, channel=CHANNEL)
        replies = await asyncio.gather(a.slack.post(body), b.slack.post(body))
        assert [r.status for r in replies] == [200, 200]
        deploy = await a.finished()
        await b.settle()
    assert deploy.state is Status.SUCCESS
    assert (await a.service.history()).total == 1, "the deploy's request_key still holds"
    assert "could not check" in caplog.text


async def test_old_deliveries_are_forgotten_by_a_running_bot(start_bot, monkeypatch) -> None:
    monkeypatch.setattr(deliveries, "FORGET_EVERY_SECONDS", 0.1)
    bot = await start_bot()
    body = bot.slack.command_body("help", user=ADMIN, channel=CHANNEL)
    await bot.slack.post(body)
    await bot.slack.post(bot.slack.command_body("help", user=ADMIN, channel=CHANNEL))
    db = bot.server.runtime.db
    await age(db, f"trigger:{trigger_of(body)}", 601)

    async def left() -> list[str]:
        async with db.session() as session:
            return list((await session.execute(select(Delivery.key))).scalars())

    async with asyncio.timeout(10):
        while len(await left()) != 1:
            await asyncio.sleep(0.05)


def command_envelope(bot: Bot, text: str) -> dict:
    form = slash_command_form(
        text,
        user_id=ADMIN,
        user_name=ADMIN.lower(),
        channel_id=CHANNEL,
        channel_name="deploys",
        response_url=bot.fake.response_url(channel=CHANNEL, user=ADMIN, kind="commands"),
        trigger_id=new_trigger_id(),
    )
    return socket_envelope(form)


async def test_socket_mode_redeliveries_on_another_connection_are_dropped(start_bot) -> None:
    fake = await FakeSlack().start()
    a = await start_bot(fake=fake, socket_mode=True)
    await fake.wait_socket()
    help_command = command_envelope(a, "help")
    home = event_callback(app_home_opened_event(ADMIN, "D0DEPLOYA1"), "Ev0SOCKET2")
    assert "payload" in await fake.send_envelope(help_command)
    await fake.send_envelope(socket_envelope(home))
    await a.wait_for(lambda: publishes(a))

    # a second bot connects; the fake sends on the newest connection: Slack's retries reach it
    b = await start_bot(fake=fake, socket_mode=True)
    await fake.wait_socket(connections=2)
    assert "payload" not in await fake.send_envelope(help_command)
    await fake.send_envelope(socket_envelope(home, retry_attempt=1, retry_reason="timeout"))
    assert "payload" in await fake.send_envelope(command_envelope(b, "help")), "a new command is answered"
    await a.settle()
    await b.settle()
    assert len(publishes(a)) == 1
