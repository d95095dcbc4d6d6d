"""Socket Mode: the same app over a WebSocket the fake opens through apps.connections.open."""

from __future__ import annotations

from bot.console.payloads import (
    app_home_opened_event,
    event_callback,
    new_trigger_id,
    slash_command_form,
    socket_envelope,
)
from bot.i18n import t
from storage.models import Status
from tests.slackbot_fixtures import ADMIN, CHANNEL, texts


def command(text: str, response_url: str, user: str = ADMIN) -> dict:
    form = slash_command_form(
        text,
        user_id=user,
        user_name=user.lower(),
        channel_id=CHANNEL,
        channel_name="deploys",
        response_url=response_url,
        trigger_id=new_trigger_id(),
    )
    return socket_envelope(form)


async def test_socket_mode_commands_events_and_redeliveries(start_bot) -> None:
    bot = await start_bot(socket_mode=True)
    await bot.fake.wait_socket()
    assert bot.calls("apps.connections.open")

    def response_url() -> str:
        return bot.fake.response_url(channel=CHANNEL, user=ADMIN, kind="commands")

    ack = await bot.fake.send_envelope(command("help", response_url()))
    assert t("zh", "cmd.help.rollback") in texts(ack["payload"])

    await bot.fake.send_envelope(command("production main", response_url()))
    deploy = await bot.finished()
    assert deploy.state is Status.SUCCESS and bot.card(deploy.id)["channel"] == CHANNEL
    assert len(bot.thread_replies(deploy.id)) == 8

    event = event_callback(app_home_opened_event(ADMIN, "D0DEPLOYA1"), "Ev0SOCKET01")
    await bot.fake.send_envelope(socket_envelope(event))
    await bot.fake.send_envelope(socket_envelope(event, retry_attempt=1, retry_reason="timeout"))
    await bot.wait_for(lambda: bot.calls("views.publish"))
    await bot.settle()
    assert len(bot.calls("views.publish")) == 1

    # Slack asks for a reconnect now and then: the app opens a new connection and carries on
    await bot.fake.disconnect()
    await bot.fake.wait_socket(connections=2)
    url = response_url()
    ack = await bot.fake.send_envelope(command("status", url))
    assert "payload" not in ack  # acked at once, answered through the response_url
    await bot.wait_for(lambda: bot.fake.responses[url])
    assert f"deploy_{deploy.id}_summary" in {b.get("block_id") for b in bot.fake.responses[url][0]["blocks"]}

    # in Socket Mode nothing listens for Slack over HTTP
    reply = await bot.command("/deploy production")
    assert reply.status == 404
