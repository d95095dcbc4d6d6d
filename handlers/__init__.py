"""Slack listeners. `register(app, ctx)` installs the three global middlewares and every listener.

Middlewares, in order: hand each listener `ctx` (the service, config, notifier) and `reply` (an
ephemeral answer to whoever acted); drop redeliveries (an event_id or trigger_id seen before); and
let only admins through, answering everyone else with a refusal. Listeners are wrapped by
`guarded`, the one place where a user's mistake (a `DeployError` or `UsageError`) becomes a
message to that user.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.kwargs_injection.async_args import AsyncArgs
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.slack import render
from bot.slack.grammar import UsageError
from bot.errors import DeployError
from bot.i18n import t
from bot.slack.notifier import CardFailed
from storage.models import Deploy

if TYPE_CHECKING:
    from bot.app.slack_app import SlackContext

log = logging.getLogger(__name__)

REDELIVERY_TTL = 600.0
REDELIVERY_MAX = 10_000
DOUBLE_CLICK_SECONDS = 2.0


def register(app: AsyncApp, ctx: SlackContext) -> None:
    from handlers import actions, commands, home, views

    app.middleware(_attach(ctx))
    app.middleware(_drop_redeliveries(RecentKeys(), RecentKeys(ttl=DOUBLE_CLICK_SECONDS)))
    app.middleware(_admins_only(ctx))
    commands.register(app)
    actions.register(app)
    views.register(app)
    home.register(app)


# --- answering the user ---------------------------------------------------------------------


@dataclass
class Reply:
    """An ephemeral answer to the user behind one request: in the ack while the request is still
    open (slash commands), else through its response_url, else in the app's DM with the user."""

    ack: AsyncAck
    response_url: str | None
    client: AsyncWebClient
    user_id: str | None
    is_command: bool
    locale: str

    async def __call__(self, message: render.Message, *, replace: bool = False) -> None:
        if self.ack.response is None:
            if self.is_command:
                await self.ack(response_type="ephemeral", **message.as_kwargs())
                return
            await self.ack()
        if self.response_url:
            # on the Web API client's pooled session (Bolt's `respond` opens a connection per answer)
            webhook = AsyncWebhookClient(
                self.response_url, session=self.client.session, retry_handlers=self.client.retry_handlers
            )
            await webhook.send(response_type="ephemeral", replace_original=replace, **message.as_kwargs())
        elif self.user_id:
            await self.client.chat_postMessage(channel=self.user_id, **message.as_kwargs())

    async def error(self, exc: Exception) -> None:
        if isinstance(exc, UsageError):
            await self(render.usage_error(exc.message(self.locale), exc.usage, self.locale))
        elif isinstance(exc, DeployError):
            await self(render.notice(exc.message(self.locale)))
        else:
            await self(render.notice(t(self.locale, "cmd.error.unexpected")))

    async def card_problems(self, ctx: SlackContext, deploy: Deploy) -> None:
        """Tell the user when the card of the deploy they just started could not be posted (the
        deploy runs anyway)."""
        outcome = await ctx.notifier.card_outcome(deploy.id)
        if isinstance(outcome, CardFailed):
            channel = f"<#{outcome.channel}>" if outcome.channel[:1] in ("C", "G") else outcome.channel
            text = t(
                self.locale,
                "cmd.channel_unreachable",
                deploy_id=deploy.id,
                channel=channel,
                error=outcome.error,
            )
            await self(render.notice(text))


Listener = Callable[..., Awaitable[None]]


class Ack(AsyncAck):
    """Bolt's ack, which also wakes whoever waits for it (`guarded`)."""

    def __init__(self) -> None:
        super().__init__()
        self.done = asyncio.Event()

    async def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        try:
            return await super().__call__(*args, **kwargs)
        finally:
            self.done.set()


def guarded(listener: Listener) -> Listener:
    """Run a listener, turning what it raises into an answer to the user. Listeners declare the
    Bolt arguments they want by name, as usual, plus `ctx` and `reply`.

    Bolt waits for what this returns before it answers Slack (the app runs with
    `process_before_response`), so this returns as soon as the listener has acked and lets the
    rest of its work go on in a task: an ack is sent the moment it is made, where Bolt's own
    runner would look for it every 10 ms."""
    wanted = inspect.getfullargspec(listener).args

    async def work(context: AsyncBoltContext, kwargs: dict[str, Any]) -> None:
        try:
            await listener(**kwargs)
        except (DeployError, UsageError) as exc:
            await context["reply"].error(exc)
        except Exception as exc:
            log.exception("%s failed", listener.__name__)
            await context["reply"].error(exc)

    async def run(args: AsyncArgs) -> None:
        context: AsyncBoltContext = args.context
        kwargs = {name: context[name] if name in ("ctx", "reply") else getattr(args, name) for name in wanted}
        task = asyncio.ensure_future(work(context, kwargs))
        # kept, so shutdown and tests can wait for the work a listener does after its ack
        tasks: set[asyncio.Future] = context["ctx"].tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        acked = asyncio.ensure_future(context.ack.done.wait())
        try:
            await asyncio.wait({task, acked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            acked.cancel()

    run.__name__ = listener.__name__
    run.__qualname__ = listener.__qualname__
    return run


# --- middlewares ----------------------------------------------------------------------------


def _attach(ctx: SlackContext):
    async def attach_context(context: AsyncBoltContext, body: dict, next: Callable) -> None:
        context["ctx"] = ctx
        context["ack"] = Ack()  # see `guarded`
        context["reply"] = Reply(
            ack=context.ack,
            response_url=context.response_url,
            client=context.client,
            user_id=context.user_id,
            is_command="command" in body,
            locale=ctx.locale,
        )
        return await next()

    return attach_context


class RecentKeys:
    """A small in-memory set of keys seen in the last few minutes."""

    def __init__(self, ttl: float = REDELIVERY_TTL, limit: int = REDELIVERY_MAX) -> None:
        self.ttl = ttl
        self.limit = limit
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, key: str) -> bool:
        now = time.monotonic()
        while self._seen and (
            len(self._seen) > self.limit or next(iter(self._seen.values())) < now - self.ttl
        ):
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True


def delivery_key(body: dict) -> str | None:
    """What makes a request unique: an event's event_id, an interaction's trigger_id."""
    if body.get("type") == "event_callback" and body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("trigger_id"):
        return f"trigger:{body['trigger_id']}"
    return None


def click_key(body: dict) -> str | None:
    """The same user pressing the same element of the same message or modal: a double click
    arrives as two requests with two trigger_ids."""
    if body.get("type") != "block_actions" or not body.get("actions"):
        return None
    action = body["actions"][0]
    container = body.get("container") or {}
    where = container.get("message_ts") or container.get("view_id") or ""
    chosen = action.get("value") or (action.get("selected_option") or {}).get("value") or ""
    return f"click:{(body.get('user') or {}).get('id')}:{where}:{action.get('action_id')}:{chosen}"


def _drop_redeliveries(seen: RecentKeys, clicks: RecentKeys):
    async def drop_redeliveries(body: dict, next: Callable) -> BoltResponse | None:
        key, click = delivery_key(body), click_key(body)
        if (key is not None and not seen.first_time(key)) or (
            click is not None and not clicks.first_time(click)
        ):
            log.info("dropped a repeated request (%s)", click or key)
            return BoltResponse(status=200, body="")
        return await next()

    return drop_redeliveries


def _admins_only(ctx: SlackContext):
    async def admins_only(body: dict, context: AsyncBoltContext, next: Callable) -> BoltResponse | None:
        user_id = context.user_id
        if user_id is None or await ctx.admins.is_admin(user_id):
            return await next()
        log.info("refused %s from non-admin %s", _kind(body), user_id)
        return _refuse(ctx, body, context)

    return admins_only


def _kind(body: dict) -> str:
    return str(body.get("command") or body.get("type") or "request")


def _refuse(ctx: SlackContext, body: dict, context: AsyncBoltContext) -> BoltResponse:
    """Answer a non-admin without running anything: ephemerally where Slack allows it."""
    text = t(ctx.locale, "error.not_admin")
    message = render.notice(text)
    if "command" in body:
        return BoltResponse(status=200, body={"response_type": "ephemeral", **message.as_kwargs()})
    if body.get("type") == "view_submission":
        return BoltResponse(
            status=200, body={"response_action": "errors", "errors": {_first_input(body["view"]): text}}
        )
    if body.get("type") == "block_actions":
        _background(ctx, context["reply"](message))
    elif (body.get("event") or {}).get("type") == "app_home_opened" and body["event"].get(
        "tab", "home"
    ) == "home":
        view = {"type": "home", "callback_id": "app_home", "blocks": message.blocks}
        _background(ctx, context.client.views_publish(user_id=context.user_id, view=view))
    return BoltResponse(status=200, body="")


def _first_input(view: dict) -> str:
    for block in view.get("blocks") or []:
        if block.get("type") == "input" and block.get("block_id"):
            return block["block_id"]
    return next(iter((view.get("state") or {}).get("values") or {}), "")


def _background(ctx: SlackContext, work: Awaitable[Any]) -> None:
    """Run Web API work after the HTTP answer, keeping a reference so it is not collected."""

    async def run() -> None:
        try:
            await work
        except Exception:
            log.exception("answering a refused request failed")

    task = asyncio.ensure_future(run())
    ctx.tasks.add(task)
    task.add_done_callback(ctx.tasks.discard)


def metadata(view: dict) -> dict:
    """A modal's private_metadata, which this app always writes as a JSON object."""
    try:
        value = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
