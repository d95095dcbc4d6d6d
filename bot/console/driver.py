"""SlackDriver: Slack's side of the bot. A user types a slash command, clicks a button or picks an
option, submits or closes a modal, opens App Home; the driver builds the request Slack would send
(payloads.py), with a fresh response_url from the LocalSlack the bot talks to, signs it, and hands
it to the bot through a transport:

- HttpTransport POSTs it to a URL: the bot's real `POST /slack/events` (tests, benchmarks);
- BoltTransport dispatches it to a Bolt app in this process and returns once the work the
  listeners do after their ack is done too (`deploybot console`).

    async with SlackDriver(bot_url, local, secret=SECRET) as slack:
        reply = await slack.command("/deploy production main", user=ADMIN)
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.console.payloads import (
    app_home_opened_event,
    block_actions_payload,
    event_callback,
    new_trigger_id,
    slash_command_form,
    view_closed_payload,
    view_submission_payload,
)
from bot.console.signing import FORM, encode_form, encode_interaction, signed_headers
from bot.console.team import DEFAULT_CHANNEL
from bot.console.workspace import LocalSlack

if TYPE_CHECKING:  # only the console hands a bot over; tests and benchmarks talk HTTP to theirs
    from bot.app.slack_app import SlackBot


@dataclass(frozen=True)
class HttpReply:
    """What the bot answered (Bolt's ack): status, body and headers of its HTTP response."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def content(self) -> Any:
        """The body as JSON when it is JSON, else as text (None when empty)."""
        try:
            return self.json()
        except ValueError:
            return self.body


class Transport(Protocol):
    """How a signed request reaches the bot."""

    async def send(self, body: bytes, headers: Mapping[str, str]) -> HttpReply: ...

    async def close(self) -> None: ...


class HttpTransport:
    """POST to `url`, on one connection pool for the driver's life."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._session: aiohttp.ClientSession | None = None

    async def send(self, body: bytes, headers: Mapping[str, str]) -> HttpReply:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.post(self.url, data=body, headers=dict(headers)) as response:
            return HttpReply(response.status, await response.text(), dict(response.headers))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class BoltTransport:
    """Dispatch to the bot's Bolt app in this process, as its HTTP endpoint would. The ack comes at
    once and the listeners work on in tasks of their own (handlers.guarded); `send` returns when
    those are done as well, so whatever the request made the bot do has happened."""

    def __init__(self, bot: SlackBot) -> None:
        self.bot = bot

    async def send(self, body: bytes, headers: Mapping[str, str]) -> HttpReply:
        request = AsyncBoltRequest(body=body.decode(), headers=dict(headers))
        response = await self.bot.app.async_dispatch(request)
        await self.settle()
        return HttpReply(response.status, response.body, response.first_headers())

    async def settle(self) -> None:
        """Until no listener work is left, including work started by work that just ended."""
        while pending := {t for t in self.bot.context.tasks if not t.done()}:
            await asyncio.wait(pending)

    async def close(self) -> None:
        """Nothing of its own to close: the bot is its owner's."""


class SlackDriver:
    """Sends what Slack would send to the bot, signed with `secret` (unsigned when it is None), with
    response_urls on `slack`. `to` is the URL of the bot's Slack endpoint, or a transport.

    Users' names come from `slack.users`; commands and clicks happen in `channel` unless told otherwise.
    The response_url of the last command or message click is kept in `last_response_url`.
    """

    def __init__(
        self,
        to: str | Transport,
        slack: LocalSlack,
        *,
        secret: str | None,
        channel: str = DEFAULT_CHANNEL[0],
    ) -> None:
        self.transport = HttpTransport(to) if isinstance(to, str) else to
        self.slack = slack
        self.secret = secret
        self.channel = channel
        self.last_response_url: str | None = None

    async def __aenter__(self) -> SlackDriver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.transport.close()

    async def command(self, text: str, *, user: str, channel: str | None = None) -> HttpReply:
        """`/deploy production main` as typed (the command name defaults to /deploy)."""
        return await self.post(self.command_body(text, user=user, channel=channel))

    def command_body(self, text: str, *, user: str, channel: str | None = None) -> bytes:
        """The form body Slack would POST for a slash command, to send (or send twice) with `post`."""
        command, _, rest = text.partition(" ") if text.startswith("/") else ("/deploy", "", text)
        channel = channel or self.channel
        self.last_response_url = self.slack.response_url(channel=channel, user=user, kind="commands")
        form = slash_command_form(
            rest.strip(),
            user_id=user,
            user_name=self._name(user),
            channel_id=channel,
            channel_name=self._channel_name(channel),
            response_url=self.last_response_url,
            trigger_id=new_trigger_id(),
            command=command,
        )
        return encode_form(form)

    async def click(
        self,
        action_id: str,
        value: str | None = None,
        *,
        user: str,
        message: dict[str, Any] | None = None,
        view: dict[str, Any] | None = None,
        channel: str | None = None,
        ephemeral: bool = False,
        selected: str | None = None,
        block_id: str | None = None,
        action_type: str = "button",
        response_url: str | None = None,
    ) -> HttpReply:
        """Press a button (or pick `selected` in a select) in `message`, an ephemeral message or `view`.

        The element is found by action_id (and value, and block_id when given) in the blocks, as
        Slack would report it. A click on a message carries `response_url`, by default a fresh one.
        """
        common: dict[str, Any] = {
            "user_id": user,
            "user_name": self._name(user),
            "trigger_id": new_trigger_id(),
            "block_id": block_id,
            "action_type": action_type,
            "selected_option": selected,
        }
        if view is not None:
            payload = block_actions_payload(action_id, value, view=view, **common)
        else:
            channel = channel or (message or {}).get("channel") or self.channel
            self.last_response_url = response_url or self.slack.response_url(
                channel=channel, user=user, message_ts=(message or {}).get("ts"), ephemeral=ephemeral
            )
            payload = block_actions_payload(
                action_id,
                value,
                channel_id=channel,
                channel_name=self._channel_name(channel),
                message=message,
                response_url=self.last_response_url,
                is_ephemeral=ephemeral,
                **common,
            )
        return await self.post(encode_interaction(payload))

    async def submit(
        self, values: Mapping[str, Any] | None = None, *, user: str, view: dict[str, Any] | None = None
    ) -> HttpReply:
        """Submit `view` (default: the last modal the bot opened) with `values` (block_id -> input)."""
        view = view if view is not None else self.slack.last_view()
        payload = view_submission_payload(
            view, values or {}, user_id=user, user_name=self._name(user), trigger_id=new_trigger_id()
        )
        return await self.post(encode_interaction(payload))

    async def close_view(self, *, user: str, view: dict[str, Any] | None = None) -> HttpReply:
        """The user closes `view` (default: the last modal the bot opened)."""
        view = view if view is not None else self.slack.last_view()
        return await self.post(
            encode_interaction(view_closed_payload(view, user_id=user, user_name=self._name(user)))
        )

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, retry_num: int | None = None
    ) -> HttpReply:
        """An Events API delivery; `retry_num` marks it as Slack's redelivery of the same event_id."""
        envelope = event_callback(event, event_id or f"Ev{uuid.uuid4().hex[:10].upper()}")
        headers = (
            {}
            if retry_num is None
            else {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        )
        return await self.post(
            json.dumps(envelope).encode(), content_type="application/json", headers=headers
        )

    async def home_opened(self, *, user: str, channel: str | None = None) -> HttpReply:
        """The user opens the app's Home tab (with the view published for them, if any)."""
        event = app_home_opened_event(user, channel or "D" + user[1:], view=self.slack.home(user))
        return await self.event(event)

    async def post(
        self,
        body: bytes,
        *,
        content_type: str = FORM,
        headers: Mapping[str, str] | None = None,
        timestamp: int | None = None,
    ) -> HttpReply:
        """Send raw bytes, signed with `secret` (unsigned when the driver has no secret)."""
        sent = (
            signed_headers(body, self.secret, timestamp, content_type)
            if self.secret
            else {"Content-Type": content_type}
        )
        sent.update(headers or {})
        return await self.transport.send(body, sent)

    def _name(self, user: str) -> str:
        return self.slack.users.get(user, {}).get("name", user.lower())

    def _channel_name(self, channel: str) -> str:
        known = self.slack.channels.get(channel)
        return known.name if known else channel.lower()
