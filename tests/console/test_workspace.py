"""The Slack emulator, exercised through slack_sdk's own clients (Web API, webhook, Socket Mode)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.console.driver import SlackDriver
from bot.console.payloads import (
    block_actions_payload,
    event_callback,
    slash_command_form,
    socket_envelope,
    view_submission_payload,
)
from bot.console.signing import encode_form, signed_headers
from bot.console.workspace import ApiCall, LocalSlack
from tests.conftest import ADMIN, GUEST
from tests.fakeslack import FakeSlack

CHANNEL = "C0DEPLOY1"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # Slack's published example signing secret


def section(text: str, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    if block_id:
        block["block_id"] = block_id
    return block


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def option(label: str, value: str) -> dict[str, Any]:
    return {"text": plain(label), "value": value}


CARD_BLOCKS = [
    section(":hourglass: *部署中* #42", "deploy_42_summary"),
    {
        "type": "actions",
        "block_id": "deploy_42_actions",
        "elements": [
            {"type": "button", "action_id": "view_logs", "text": plain("查看日志"), "value": "42"},
            {
                "type": "button",
                "action_id": "cancel_deploy",
                "text": plain("取消部署"),
                "style": "danger",
                "value": "42",
                "confirm": {
                    "title": plain("确认取消？"),
                    "text": {"type": "mrkdwn", "text": "取消 #42"},
                    "confirm": plain("取消部署"),
                    "deny": plain("返回"),
                },
            },
        ],
    },
]

# The 一键部署 modal of slack-payloads/view_submission.json, as the bot sends it to views.open.
DEPLOY_MODAL = {
    "type": "modal",
    "callback_id": "deploy_modal",
    "title": plain("一键部署"),
    "submit": plain("开始部署"),
    "close": plain("取消"),
    "notify_on_close": True,
    "private_metadata": json.dumps({"channel_id": CHANNEL}),
    "blocks": [
        {
            "type": "input",
            "block_id": "env",
            "label": plain("部署环境"),
            "element": {
                "type": "static_select",
                "action_id": "env_select",
                "placeholder": plain("选择环境"),
                "initial_option": option("生产环境", "production"),
                "options": [option("生产环境", "production"), option("预发布环境", "staging")],
            },
        },
        {
            "type": "input",
            "block_id": "branch",
            "label": plain("Git分支"),
            "element": {"type": "plain_text_input", "action_id": "branch_input", "initial_value": "main"},
        },
        {
            "type": "input",
            "block_id": "description",
            "label": plain("部署说明"),
            "optional": True,
            "element": {"type": "plain_text_input", "action_id": "description_input", "multiline": True},
        },
        {
            "type": "input",
            "block_id": "options",
            "label": plain("选项"),
            "optional": True,
            "element": {
                "type": "checkboxes",
                "action_id": "options_checkboxes",
                "options": [
                    option("跳过构建步骤", "skip_build"),
                    option("跳过数据库迁移", "skip_migrations"),
                ],
            },
        },
    ],
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=fake.api_url, retry_handlers=[])


async def test_auth_users_and_groups(fake: FakeSlack, client: AsyncWebClient) -> None:
    assert (await client.auth_test())["user_id"] == "U0DEPLOYB"
    assert fake.calls_to("auth.test")[0].params == {}

    info = await client.users_info(user=GUEST)
    assert (info["user"]["name"], info["user"]["is_admin"]) == ("li.na", False)
    assert fake.calls_to("users.info")[0].params == {"user": GUEST}

    fake.add_user("U0OPS0002", "wang.fang")
    fake.set_group("S0DEPLOYERS", [ADMIN, "U0OPS0002"])
    members = await client.usergroups_users_list(usergroup="S0DEPLOYERS")
    assert members["users"] == [ADMIN, "U0OPS0002"]

    for call, error in [
        (client.users_info(user="U0NOBODY1"), "user_not_found"),
        (client.usergroups_users_list(usergroup="S0MISSING1"), "no_such_subteam"),
        (AsyncWebClient(base_url=fake.api_url).auth_test(), "not_authed"),
        (client.apps_connections_open(app_token="xoxb-not-an-app-token"), "not_allowed_token_type"),
    ]:
        with pytest.raises(SlackApiError) as refused:
            await call
        assert refused.value.response["error"] == error


async def test_messages_threads_and_updates(fake: FakeSlack, client: AsyncWebClient) -> None:
    card = await client.chat_postMessage(channel=CHANNEL, text="部署中 #42", blocks=CARD_BLOCKS)
    ts = card["ts"]
    assert card["channel"] == CHANNEL and card["message"]["blocks"] == CARD_BLOCKS
    replies = [
        await client.chat_postMessage(channel=CHANNEL, thread_ts=ts, text=f"[{n}/7] step") for n in (1, 2)
    ]
    assert [r["message"]["thread_ts"] for r in replies] == [ts, ts]
    assert replies[0]["message"]["parent_user_id"] == "U0DEPLOYB"
    stamps = [ts] + [r["ts"] for r in replies]
    assert stamps == sorted(stamps, key=float) and len(set(stamps)) == 3

    await client.chat_update(channel=CHANNEL, ts=ts, text="部署成功 #42")  # no blocks: Slack keeps them
    assert fake.card(CHANNEL, ts)["text"] == "部署成功 #42"
    assert fake.card(CHANNEL, ts)["blocks"] == CARD_BLOCKS
    await client.chat_update(channel=CHANNEL, ts=ts, text="部署成功 #42", blocks=[section("done")])
    assert fake.card(CHANNEL, ts)["blocks"] == [section("done")]
    assert "edited" in fake.card(CHANNEL, ts)

    assert [m["text"] for m in fake.thread(CHANNEL, ts)] == ["[1/7] step", "[2/7] step"]
    assert fake.card(CHANNEL, ts)["reply_count"] == 2
    broadcast = await client.chat_postMessage(
        channel=CHANNEL, thread_ts=ts, text="failed", reply_broadcast=True
    )
    assert [m["ts"] for m in fake.channel_history(CHANNEL)] == [ts, broadcast["ts"]]

    with pytest.raises(SlackApiError) as missing:
        await client.chat_update(channel=CHANNEL, ts="1.000001", text="x")
    assert missing.value.response["error"] == "message_not_found"


async def test_form_and_query_string_params_are_read(fake: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [section("from a form")]
    await client.api_call(
        "chat.postMessage", data={"channel": CHANNEL, "text": "form", "blocks": json.dumps(blocks)}
    )
    await client.api_call(
        "chat.postEphemeral", params={"channel": CHANNEL, "user": GUEST, "text": "only you"}
    )
    assert fake.channel_history(CHANNEL)[0]["blocks"] == blocks
    assert [(e["text"], e["channel"]) for e in fake.ephemerals(GUEST)] == [("only you", CHANNEL)]


async def test_files_upload_v2_round_trip(fake: FakeSlack, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel=CHANNEL, text="card")
    data = bytes(range(256)) * 8192 + b"\xe9\x83\xa8\xe7\xbd\xb2 last line without newline"  # > 2 MiB
    result = await client.files_upload_v2(
        channel=CHANNEL, thread_ts=parent["ts"], content=data, filename="deploy-42.log", title="deploy-42.log"
    )
    stored = fake.files[result["file"]["id"]]
    assert stored.data == data and stored.complete
    assert (stored.name, stored.channel, stored.thread_ts) == ("deploy-42.log", CHANNEL, parent["ts"])
    assert [c.method for c in fake.calls[1:]] == [
        "files.getUploadURLExternal",
        "file_upload",
        "files.completeUploadExternal",
    ]
    assert fake.calls_to("files.getUploadURLExternal")[0].params["length"] == str(len(data))
    assert fake.thread(CHANNEL, parent["ts"])[-1]["files"][0]["id"] == stored.id


async def test_rate_limit_is_retried_after_retry_after(fake: FakeSlack) -> None:
    retrying = AsyncWebClient(
        token="xoxb-test",
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    posted = await retrying.chat_postMessage(channel=CHANNEL, text="v1")
    fake.fail("chat.update", 429, retry_after=0)
    await retrying.chat_update(channel=CHANNEL, ts=posted["ts"], text="v2")
    attempts = fake.calls_to("chat.update")
    assert [c.status for c in attempts] == [429, 200]
    assert attempts[0].response == {"ok": False, "error": "ratelimited"}
    assert fake.card(CHANNEL, posted["ts"])["text"] == "v2"

    fake.fail("chat.update", 429, retry_after=7)
    with pytest.raises(SlackApiError) as limited:
        await AsyncWebClient(token="xoxb-test", base_url=fake.api_url).chat_update(
            channel=CHANNEL, ts=posted["ts"], text="v3"
        )
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "7"
    assert fake.card(CHANNEL, posted["ts"])["text"] == "v2"


async def test_server_errors_then_success(fake: FakeSlack) -> None:
    handler = AsyncServerErrorRetryHandler(
        max_retry_count=2, interval_calculator=FixedValueRetryIntervalCalculator(0.01)
    )
    retrying = AsyncWebClient(token="xoxb-test", base_url=fake.api_url, retry_handlers=[handler])
    fake.fail("chat.postMessage", 500, times=2)
    posted = await retrying.chat_postMessage(channel=CHANNEL, text="card")
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [500, 500, 200]
    assert [m["ts"] for m in fake.channel_history(CHANNEL)] == [posted["ts"]]


async def test_not_in_channel(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C0SECRET1", "secret", member=False)
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel="C0SECRET1", text="card")
    assert refused.value.response["error"] == "not_in_channel"

    fake.fail("chat.postMessage", error="not_in_channel")
    with pytest.raises(SlackApiError) as injected:
        await client.chat_postMessage(channel=CHANNEL, text="card")
    assert (injected.value.response.status_code, injected.value.response["error"]) == (200, "not_in_channel")
    await client.chat_postMessage(channel=CHANNEL, text="card")  # only once
    assert len(fake.channel_history(CHANNEL)) == 1 and not fake.channel_history("C0SECRET1")


async def test_views_hash_stack_and_homes(fake: FakeSlack, client: AsyncWebClient) -> None:
    opened = (await client.views_open(trigger_id="1.2.abc", view=DEPLOY_MODAL))["view"]
    assert opened["id"].startswith("V") and opened["root_view_id"] == opened["id"]
    assert opened["callback_id"] == "deploy_modal" and opened["state"] == {"values": {}}

    changed = {**DEPLOY_MODAL, "private_metadata": "{}"}
    updated = (await client.views_update(view_id=opened["id"], hash=opened["hash"], view=changed))["view"]
    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    with pytest.raises(SlackApiError) as stale:
        await client.views_update(view_id=opened["id"], hash=opened["hash"], view=DEPLOY_MODAL)
    assert stale.value.response["error"] == "hash_conflict"
    assert fake.last_view()["private_metadata"] == "{}"

    pushed = (await client.views_push(trigger_id="1.2.def", view=DEPLOY_MODAL))["view"]
    assert (pushed["previous_view_id"], pushed["root_view_id"]) == (opened["id"], opened["id"])
    assert fake.last_view()["id"] == pushed["id"]

    home = {"type": "home", "callback_id": "app_home", "blocks": [section("home")]}
    first = (await client.views_publish(user_id=ADMIN, view=home))["view"]
    again = (await client.views_publish(user_id=ADMIN, view=home, hash=first["hash"]))["view"]
    other = (await client.views_publish(user_id=GUEST, view=home))["view"]
    assert again["id"] == first["id"] != other["id"] and "title" not in again
    assert fake.home(ADMIN)["hash"] == again["hash"]
    with pytest.raises(SlackApiError) as conflict:
        await client.views_publish(user_id=ADMIN, view=home, hash=first["hash"])
    assert conflict.value.response["error"] == "hash_conflict"


async def test_refused_block_kit_is_answered_and_recorded(fake: FakeSlack, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as too_many:
        await client.chat_postMessage(channel=CHANNEL, text="x", blocks=[section(str(n)) for n in range(51)])
    assert too_many.value.response["error"] == "invalid_blocks"
    assert "no more than 50 items allowed [json-pointer:/blocks]" in too_many.value.response["errors"]
    with pytest.raises(SlackApiError) as big_view:
        await client.views_open(trigger_id="1.2.x", view={**DEPLOY_MODAL, "blocks": [section("x")] * 101})
    assert big_view.value.response["error"] == "invalid_arguments"
    assert [v.method for v in fake.violations] == ["chat.postMessage", "views.open"]
    assert not fake.channel_history(CHANNEL) and not fake.views
    fake.violations.clear()  # refused on purpose


async def test_block_kit_is_checked_by_blockkit(fake: FakeSlack, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as long_text:
        await client.chat_postMessage(channel=CHANNEL, text="x", blocks=[section("x" * 3001)])
    assert "3000" in long_text.value.response["errors"][0]
    with pytest.raises(SlackApiError), pytest.warns(UserWarning, match="text"):  # slack_sdk warns as well
        await client.chat_update(channel=CHANNEL, ts="1.000001", blocks=[section("no text fallback")])
    with pytest.raises(SlackApiError):
        await client.views_open(
            trigger_id="1.2.x", view={**DEPLOY_MODAL, "title": plain("a title far too long for a modal")}
        )
    home = await AsyncWebhookClient(fake.response_url(channel=CHANNEL, user=ADMIN)).send(
        text="", blocks=[section("")]
    )
    assert home.status_code == 400
    assert [v.method for v in fake.violations] == [
        "chat.postMessage",
        "chat.update",
        "views.open",
        "response_url",
    ]
    assert not fake.messages and not fake.views and not fake.ephemerals(ADMIN)
    fake.violations.clear()  # refused on purpose


async def test_leaving_with_violations_fails_the_test() -> None:
    with pytest.raises(AssertionError, match="chat.postMessage"):
        async with FakeSlack() as fake:
            client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
            with pytest.raises(SlackApiError):
                await client.chat_postMessage(channel=CHANNEL, text="x", blocks=[section("x")] * 51)


async def test_response_url_answers(fake: FakeSlack, client: AsyncWebClient) -> None:
    command_url = fake.response_url(channel=CHANNEL, user=ADMIN, kind="commands")
    respond = AsyncWebhookClient(command_url)
    assert (await respond.send(text="已受理")).body == "ok"  # ephemeral by default
    await respond.send(text="部署 #42 已开始", replace_original=True)
    await respond.send(text="大家看", response_type="in_channel")
    assert [e["text"] for e in fake.ephemerals(ADMIN)] == ["部署 #42 已开始"]
    assert [m["text"] for m in fake.channel_history(CHANNEL)] == ["大家看"]
    assert [b["text"] for b in fake.responses[command_url]] == ["已受理", "部署 #42 已开始", "大家看"]

    card = await client.chat_postMessage(channel=CHANNEL, text="history", blocks=CARD_BLOCKS)
    click_url = fake.response_url(channel=CHANNEL, user=ADMIN, message_ts=card["ts"])
    await AsyncWebhookClient(click_url).send(text="page 2", blocks=[section("page 2")], replace_original=True)
    assert fake.card(CHANNEL, card["ts"])["blocks"] == [section("page 2")]
    await AsyncWebhookClient(click_url).send_dict({"delete_original": True})
    assert (CHANNEL, card["ts"]) not in fake.messages

    assert (await AsyncWebhookClient(f"{fake.url}actions/T0DEPLOY1/1/nope").send(text="x")).status_code == 404
    assert (await respond.send_dict({"response_type": "ephemeral"})).status_code == 400  # no text
    assert [c.status for c in fake.calls_to("response_url")][-2:] == [404, 400]


async def test_socket_mode_round_trip(fake: FakeSlack) -> None:
    web_client = AsyncWebClient(base_url=fake.api_url)
    socket = SocketModeClient(app_token="xapp-1-test", web_client=web_client, ping_interval=1)
    hellos: list[str] = []

    async def on_message(_client: Any, message: dict[str, Any], _raw: str | None) -> None:
        if message.get("type") == "hello":
            hellos.append(message["connection_info"]["app_id"])

    async def ack(client: SocketModeClient, request: SocketModeRequest) -> None:
        payload = {"text": "已受理"} if request.type == "slash_commands" else None
        await client.send_socket_mode_response(SocketModeResponse(request.envelope_id, payload))

    socket.message_listeners.append(on_message)  # type: ignore[arg-type]
    socket.socket_mode_request_listeners.append(ack)  # type: ignore[arg-type]
    try:
        await socket.connect()
        await fake.wait_socket()
        form = slash_command_form(
            "production main",
            user_id=ADMIN,
            user_name="zhang.wei",
            channel_id=CHANNEL,
            channel_name="deploys",
            response_url=fake.response_url(kind="commands"),
            trigger_id="1.2.3",
        )
        acked = await fake.send_envelope(socket_envelope(form))
        assert acked["payload"] == {"text": "已受理"} and acked["envelope_id"]
        assert fake.calls_to("apps.connections.open")[0].ok

        await fake.disconnect()  # Slack asks for a fresh connection every few hours
        await fake.wait_socket(connections=2)
        event = socket_envelope(
            event_callback({"type": "app_home_opened", "user": ADMIN}, "Ev1"), retry_attempt=1
        )
        acked = await fake.send_envelope(event)
        assert acked == {"envelope_id": acked["envelope_id"]}  # events carry no payload back
        assert len(fake.calls_to("apps.connections.open")) == 2
        await fake.wait_until(lambda: len(hellos) == 2)
    finally:
        await socket.close()


def test_signature_matches_slack_test_vector() -> None:
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    headers = signed_headers(body, SECRET, 1531420618)
    assert (
        headers["X-Slack-Signature"] == "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_slash_command_form_is_byte_exact() -> None:
    # slack-payloads/slash_command.form.txt and the signature in slash_command.headers.json
    expected = (
        b"token=Zx3cV7bN1mQ9wE5rT2yU8iO4&team_id=T0DEPLOY1&team_domain=deployteam&channel_id=C0DEPLOY1"
        b"&channel_name=deploys&user_id=U0ADMIN01&user_name=zhang.wei&command=%2Fdeploy&text=production+main"
        b"&api_app_id=A0DEPLOYB&is_enterprise_install=false"
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT0DEPLOY1%2F8074312450001%2FXq7mBv2LpR9sKd4TnW6yHc1Z"
        b"&trigger_id=8074312450017.2201958763041.5c0e9f3a7b2d4c61e8a90f1b2c3d4e5f"
    )
    body = encode_form(
        slash_command_form(
            "production main",
            user_id=ADMIN,
            user_name="zhang.wei",
            channel_id=CHANNEL,
            channel_name="deploys",
            response_url="https://hooks.slack.com/commands/T0DEPLOY1/8074312450001/Xq7mBv2LpR9sKd4TnW6yHc1Z",
            trigger_id="8074312450017.2201958763041.5c0e9f3a7b2d4c61e8a90f1b2c3d4e5f",
        )
    )
    assert body == expected
    headers = signed_headers(body, SECRET, 1764320400)
    assert headers == {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": "1764320400",
        "X-Slack-Signature": "v0=0179c8941fd9408f119cd14ad8d1bbe7499fb5362b3120269bf3a8ac25f58dc5",
    }
    fresh = signed_headers(body, SECRET)
    assert SignatureVerifier(SECRET).is_valid(
        body, fresh["X-Slack-Request-Timestamp"], fresh["X-Slack-Signature"]
    )


def test_view_submission_state_has_slack_shapes() -> None:
    payload = view_submission_payload(
        DEPLOY_MODAL,
        {"env": "staging", "branch": "release/2025.11", "options": ["skip_build"]},
        user_id=ADMIN,
        user_name="zhang.wei",
        trigger_id="1.2.3",
    )
    # slack-payloads/view_submission.json: view.state.values
    assert payload["view"]["state"]["values"] == {
        "env": {"env_select": {"type": "static_select", "selected_option": option("预发布环境", "staging")}},
        "branch": {"branch_input": {"type": "plain_text_input", "value": "release/2025.11"}},
        "description": {"description_input": {"type": "plain_text_input", "value": None}},
        "options": {
            "options_checkboxes": {
                "type": "checkboxes",
                "selected_options": [option("跳过构建步骤", "skip_build")],
            }
        },
    }
    assert payload["view"]["callback_id"] == "deploy_modal" and payload["response_urls"] == []
    with pytest.raises(ValueError):
        view_submission_payload(DEPLOY_MODAL, {"env": "moon"}, user_id=ADMIN, user_name="z", trigger_id="1")
    with pytest.raises(ValueError):
        view_submission_payload(DEPLOY_MODAL, {"brnch": "main"}, user_id=ADMIN, user_name="z", trigger_id="1")


def test_block_actions_payload_reads_the_element_from_the_message() -> None:
    message = {"type": "message", "ts": "1764320401.532109", "text": "card", "blocks": CARD_BLOCKS}
    payload = block_actions_payload(
        "cancel_deploy",
        None,
        user_id=ADMIN,
        user_name="zhang.wei",
        trigger_id="1.2.3",
        channel_id=CHANNEL,
        message=message,
        response_url="http://x/actions/T/1/a",
    )
    action = payload["actions"][0]
    assert (action["block_id"], action["value"], action["style"]) == ("deploy_42_actions", "42", "danger")
    assert action["confirm"] == CARD_BLOCKS[1]["elements"][1]["confirm"]
    assert payload["container"] == {
        "type": "message",
        "message_ts": message["ts"],
        "channel_id": CHANNEL,
        "is_ephemeral": False,
    }
    assert payload["message"] == message and payload["response_url"] == "http://x/actions/T/1/a"

    filters = [
        {
            "type": "actions",
            "block_id": "history_filters",
            "elements": [
                {
                    "type": "static_select",
                    "action_id": "history_env",
                    "initial_option": option("全部", "all"),
                    "options": [option("全部", "all"), option("生产环境", "production")],
                },
                {
                    "type": "static_select",
                    "action_id": "history_status",
                    "initial_option": option("成功", "success"),
                    "options": [option("全部", "all"), option("成功", "success")],
                },
            ],
        }
    ]
    picked = block_actions_payload(
        "history_env",
        None,
        user_id=ADMIN,
        user_name="zhang.wei",
        trigger_id="1.2.3",
        channel_id=CHANNEL,
        message={"ts": "1.2", "blocks": filters},
        selected_option="production",
        is_ephemeral=True,
    )
    assert picked["actions"][0]["selected_option"] == option("生产环境", "production")
    assert picked["state"]["values"]["history_filters"] == {
        "history_env": {"type": "static_select", "selected_option": option("生产环境", "production")},
        "history_status": {"type": "static_select", "selected_option": option("成功", "success")},
    }
    assert "message" not in picked and picked["container"]["is_ephemeral"] is True


async def test_on_call_hook_sees_each_call_after_it_happened() -> None:
    seen: list[ApiCall] = []

    async def hook(call: ApiCall) -> None:
        seen.append(call)

    async with LocalSlack(on_call=hook) as local:
        client = AsyncWebClient(token="xoxb-test", base_url=local.api_url)
        posted = await client.chat_postMessage(channel=CHANNEL, text="hi")
        local.on_call = seen.append  # a plain function works as well
        await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="hello")
    assert [(c.method, c.params["text"]) for c in seen] == [
        ("chat.postMessage", "hi"),
        ("chat.update", "hello"),
    ]
    assert seen[0].response["ts"] == posted["ts"]


async def test_driver_sends_signed_slack_requests(fake: FakeSlack) -> None:
    """A stand-in for the bot's endpoint checks what SlackDriver sends and answers through response_url."""
    received: list[tuple[dict[str, str], Any]] = []
    verifier = SignatureVerifier(SECRET)

    async def slack_events(request: web.Request) -> web.Response:
        body = await request.read()
        if not verifier.is_valid_request(body, dict(request.headers)):
            return web.Response(status=401)
        if request.content_type == "application/json":
            received.append((dict(request.headers), json.loads(body)))
            return web.Response()
        form = dict(parse_qsl(body.decode()))
        parsed = json.loads(form["payload"]) if "payload" in form else form
        received.append((dict(request.headers), parsed))
        if parsed.get("response_url"):
            await AsyncWebhookClient(parsed["response_url"]).send(text=f"got {parsed.get('text', 'click')}")
        return web.json_response(
            {"response_action": "clear"} if parsed.get("type") == "view_submission" else {}
        )

    app = web.Application()
    app.router.add_post("/slack/events", slack_events)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    try:
        async with SlackDriver(url, fake, secret=SECRET) as slack:
            reply = await slack.command("/deploy production main", user=ADMIN)
            assert reply.status == 200
            form = received[-1][1]
            assert (form["command"], form["text"], form["user_name"]) == (
                "/deploy",
                "production main",
                "zhang.wei",
            )
            assert [e["text"] for e in fake.ephemerals(ADMIN)] == ["got production main"]

            card = (
                await AsyncWebClient(token="xoxb-t", base_url=fake.api_url).chat_postMessage(
                    channel=CHANNEL, text="card", blocks=CARD_BLOCKS
                )
            )["message"]
            await slack.click("view_logs", user=GUEST, message=card)
            click = received[-1][1]
            assert (click["actions"][0]["value"], click["user"]["name"]) == ("42", "li.na")
            assert fake.responses[slack.last_response_url] == [{"text": "got click"}]

            await AsyncWebClient(token="xoxb-t", base_url=fake.api_url).views_open(
                trigger_id="t", view=DEPLOY_MODAL
            )
            submitted = await slack.submit({"branch": "dev"}, user=ADMIN)
            assert submitted.json() == {"response_action": "clear"}
            assert received[-1][1]["view"]["id"] == fake.last_view()["id"]

            await slack.event({"type": "app_home_opened", "user": ADMIN, "channel": "D0ADMIN01"}, retry_num=1)
            headers, envelope = received[-1]
            assert envelope["type"] == "event_callback" and headers["X-Slack-Retry-Num"] == "1"

            unsigned = SlackDriver(url, fake, secret=None)
            assert (await unsigned.command("/deploy help", user=ADMIN)).status == 401
            await unsigned.close()
    finally:
        await runner.cleanup()


async def test_wait_until_times_out_when_nothing_happens(fake: FakeSlack) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await fake.wait_until(lambda: fake.calls, timeout=0.05)


def bolt_app(fake: LocalSlack) -> Any:
    """A minimal Bolt app (not deploybot's) to prove Bolt itself accepts what the driver and envelopes carry."""
    from slack_bolt.async_app import AsyncApp

    app = AsyncApp(client=AsyncWebClient(token="xoxb-test", base_url=fake.api_url), signing_secret=SECRET)

    @app.command("/deploy")
    async def deploy(ack: Any, command: dict[str, Any], respond: Any, client: AsyncWebClient) -> None:
        await ack(f"accepted {command['text']}")
        await client.views_open(trigger_id=command["trigger_id"], view=DEPLOY_MODAL)
        await respond(text="deploy #42 started", replace_original=True)

    @app.action("cancel_deploy")
    async def cancel(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.chat_update(channel=body["channel"]["id"], ts=body["message"]["ts"], text="cancelled")

    @app.view("deploy_modal")
    async def submitted(ack: Any, view: dict[str, Any]) -> None:
        branch = view["state"]["values"]["branch"]["branch_input"]["value"]
        await ack(response_action="errors", errors={"branch": f"no branch {branch}"})

    return app


async def test_bolt_accepts_driver_requests(fake: FakeSlack) -> None:
    runner = web.AppRunner(bolt_app(fake).web_app(path="/slack/events"))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"
    try:
        async with SlackDriver(url, fake, secret=SECRET) as slack:
            reply = await slack.command("/deploy production main", user=ADMIN)
            assert (reply.status, reply.body) == (200, "accepted production main")
            await fake.wait_until(lambda: fake.ephemerals(ADMIN))
            assert fake.ephemerals(ADMIN)[0]["text"] == "deploy #42 started"
            assert fake.last_view()["callback_id"] == "deploy_modal"

            refused = await slack.submit({"branch": "nope"}, user=ADMIN)
            assert refused.json() == {"response_action": "errors", "errors": {"branch": "no branch nope"}}

            card = await AsyncWebClient(token="xoxb-t", base_url=fake.api_url).chat_postMessage(
                channel=CHANNEL, text="card", blocks=CARD_BLOCKS
            )
            assert (await slack.click("cancel_deploy", user=ADMIN, message=card["message"])).status == 200
            await fake.wait_until(lambda: fake.card(CHANNEL, card["ts"])["text"] == "cancelled")

            stale = await slack.post(b"command=%2Fdeploy&text=x", timestamp=1531420618)  # > 5 minutes old
            assert stale.status == 401
    finally:
        await runner.cleanup()


async def test_bolt_over_socket_mode(fake: FakeSlack) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    app = bolt_app(fake)
    handler = AsyncSocketModeHandler(app, "xapp-1-test", web_client=AsyncWebClient(base_url=fake.api_url))
    await handler.connect_async()
    try:
        form = slash_command_form(
            "production main",
            user_id=ADMIN,
            user_name="zhang.wei",
            channel_id=CHANNEL,
            channel_name="deploys",
            response_url=fake.response_url(channel=CHANNEL, user=ADMIN, kind="commands"),
            trigger_id="1.2.3",
        )
        acked = await fake.send_envelope(socket_envelope(form))
        assert acked["payload"] == {"text": "accepted production main"}

        await fake.wait_until(lambda: fake.modal_history)
        submission = view_submission_payload(
            fake.last_view(), {"branch": "x"}, user_id=ADMIN, user_name="zhang.wei", trigger_id="4.5.6"
        )
        acked = await fake.send_envelope(socket_envelope(submission))
        assert acked["payload"] == {"response_action": "errors", "errors": {"branch": "no branch x"}}
    finally:
        await handler.close_async()
