"""Slack for the tests: LocalSlack with failure injection, Block Kit validation and assertion helpers,
plus SlackDriver, which plays Slack's side of the bot's real `POST /slack/events` endpoint.

    async with FakeSlack() as fake:
        client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
        ...
        async with SlackDriver(bot_url, fake, secret=SECRET) as slack:
            reply = await slack.command("/deploy production main", user=ADMIN)
            card = fake.card("C0DEPLOY1", fake.calls_to("chat.postMessage")[0].response["ts"])

Every Block Kit payload the bot sends is checked with tests/blockkit.py; a refused one is answered
like Slack does (invalid_blocks / invalid_arguments) and kept in `fake.violations`, and leaving the
`async with` block with violations fails the test (set `strict=False` or clear the list to allow them).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.console.workspace import (
    BLOCK_CARRIERS,
    DEFAULT_CHANNEL,
    FORM,
    Answer,
    Call,
    LocalSlack,
    app_home_opened_event,
    block_actions_payload,
    encode_form,
    encode_interaction,
    event_callback,
    new_trigger_id,
    signed_headers,
    slash_command_form,
    view_closed_payload,
    view_submission_payload,
)
from tests import blockkit


@dataclass(frozen=True)
class Violation:
    method: str
    problems: tuple[str, ...]
    payload: dict[str, Any]


@dataclass
class _Failure:
    status: int
    error: str | None
    retry_after: int
    times: int


class FakeSlack(LocalSlack):
    def __init__(self, *, strict: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.strict = strict
        self.violations: list[Violation] = []
        self._failures: dict[str, list[_Failure]] = {}

    async def __aexit__(self, exc_type: object, *rest: object) -> None:
        await self.close()
        if self.strict and exc_type is None and self.violations:
            listed = "\n".join(f"{v.method}: {'; '.join(v.problems)}" for v in self.violations)
            raise AssertionError(f"the bot sent Block Kit that Slack refuses:\n{listed}")

    # ---- failure injection

    def fail(
        self,
        method: str,
        status: int = 429,
        *,
        retry_after: int = 1,
        times: int = 1,
        error: str | None = None,
    ) -> None:
        """Make the next `times` calls of `method` fail.

        status 429: `ratelimited` with Retry-After; 5xx: an HTML error page; `error="..."`: HTTP 200
        with `ok: false` (status ignored). `method` may also be "response_url" or "file_upload".
        """
        failure = _Failure(200 if error else status, error, retry_after, times)
        self._failures.setdefault(method, []).append(failure)

    def intercept(self, method: str, params: dict[str, Any]) -> Answer | None:
        queue = self._failures.get(method)
        if not queue:
            return None
        failure = queue[0]
        failure.times -= 1
        if failure.times <= 0:
            queue.pop(0)
        if failure.error:
            return Answer(200, {"ok": False, "error": failure.error})
        if failure.status == 429:
            return Answer(
                429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(failure.retry_after)}
            )
        return Answer(
            failure.status, "<html><body>Internal Server Error</body></html>", content_type="text/html"
        )

    # ---- validation

    def block_problems(self, method: str, payload: dict[str, Any]) -> list[str]:
        problems = super().block_problems(method, payload) + _validate(method, payload)
        problems = list(dict.fromkeys(problems))
        if problems:
            self.violations.append(Violation(method, tuple(problems), payload))
        return problems

    # ---- assertions

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def card(self, channel: str, ts: str) -> dict[str, Any]:
        """The message as the channel shows it now (after every chat.update)."""
        message = self.messages.get((channel, ts))
        if message is None:
            raise AssertionError(f"no message {ts} in {channel}")
        return message

    def ephemerals(self, user: str) -> list[dict[str, Any]]:
        """Ephemeral messages shown to `user` (chat.postEphemeral and response_url), oldest first."""
        return self.ephemeral.get(user, [])

    def last_view(self) -> dict[str, Any]:
        """The modal most recently opened, pushed or updated, in its current state."""
        if not self.modal_history:
            raise AssertionError("no modal was opened")
        return self.views[self.modal_history[-1]]


def _validate(method: str, payload: dict[str, Any]) -> list[str]:
    """tests/blockkit.py's verdict on the message or view in `payload` (it raises AssertionError)."""
    try:
        if BLOCK_CARRIERS[method] == "view":
            blockkit.validate_view(payload.get("view"))
        else:
            blockkit.validate_message({k: payload[k] for k in ("text", "blocks") if k in payload})
    except AssertionError as exc:
        return [str(exc)]
    return []


@dataclass(frozen=True)
class HttpReply:
    """What the bot answered over HTTP (Bolt's ack)."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class SlackDriver:
    """Sends what Slack would send to the bot's `POST /slack/events`: signed, with response_urls on `slack`.

    Users' names come from `slack.users`; commands and clicks happen in `channel` unless told otherwise.
    """

    def __init__(
        self,
        url: str,
        slack: LocalSlack,
        *,
        secret: str | None,
        channel: tuple[str, str] = DEFAULT_CHANNEL,
    ) -> None:
        self.url = url
        self.slack = slack
        self.secret = secret
        self.channel_id, self.channel_name = channel
        self.last_response_url: str | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SlackDriver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def command(self, text: str, *, user: str, channel: str | None = None) -> HttpReply:
        """`/deploy production main` as typed (the command name defaults to /deploy)."""
        command, _, rest = text.partition(" ") if text.startswith("/") else ("/deploy", "", text)
        channel = channel or self.channel_id
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
        return await self.post(encode_form(form))

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
    ) -> HttpReply:
        """Press a button (or pick `selected` in a select) in `message`, an ephemeral entry or `view`.

        The element is found by action_id (and value) in the blocks, as Slack would report it.
        """
        channel = channel or (message or {}).get("channel") or self.channel_id
        common = {"user_id": user, "user_name": self._name(user), "trigger_id": new_trigger_id()}
        if view is not None:
            payload = block_actions_payload(action_id, value, view=view, selected_option=selected, **common)
        else:
            self.last_response_url = self.slack.response_url(
                channel=channel, user=user, message_ts=(message or {}).get("ts"), ephemeral=ephemeral
            )
            payload = block_actions_payload(
                action_id,
                value,
                channel_id=channel,
                channel_name=self._channel_name(channel),
                message=message,
                response_url=self.last_response_url,
                selected_option=selected,
                is_ephemeral=ephemeral,
                **common,
            )
        return await self.post(encode_interaction(payload))

    async def submit(
        self, values: dict[str, Any] | None = None, *, user: str, view: dict[str, Any] | None = None
    ) -> HttpReply:
        """Submit `view` (default: the last modal the bot opened) with `values` (block_id -> input)."""
        view = view if view is not None else self._last_modal()
        payload = view_submission_payload(
            view, values or {}, user_id=user, user_name=self._name(user), trigger_id=new_trigger_id()
        )
        return await self.post(encode_interaction(payload))

    async def close_view(self, *, user: str, view: dict[str, Any] | None = None) -> HttpReply:
        view = view if view is not None else self._last_modal()
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
        headers: dict[str, str] | None = None,
        timestamp: int | None = None,
    ) -> HttpReply:
        """POST raw bytes, signed with `secret` (unsigned when the driver has no secret)."""
        sent = (
            signed_headers(body, self.secret, timestamp, content_type)
            if self.secret
            else {"Content-Type": content_type}
        )
        sent.update(headers or {})
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.post(self.url, data=body, headers=sent) as response:
            return HttpReply(response.status, await response.text(), dict(response.headers))

    def _last_modal(self) -> dict[str, Any]:
        if not self.slack.modal_history:
            raise AssertionError("no modal was opened")
        return self.slack.views[self.slack.modal_history[-1]]

    def _name(self, user: str) -> str:
        return self.slack.users.get(user, {}).get("name", user.lower())

    def _channel_name(self, channel: str) -> str:
        known = self.slack.channels.get(channel)
        return known.name if known else channel.lower()
