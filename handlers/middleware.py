"""The three middlewares every Slack request passes, in order: hand each listener `ctx` (the
service, config, notifier) and `reply`; drop redeliveries (an event_id or trigger_id seen before,
and double clicks, by any bot process on the database); and let only admins through, answering
everyone else with a refusal."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.response import BoltResponse

from bot.i18n import t
from bot.slack.blocks.messages import notice
from bot.slack.client import is_slack_url
from handlers.context import SlackContext
from handlers.guard import Ack, Reply
from storage.deliveries import DeliveryGuard

log = logging.getLogger(__name__)

REDELIVERY_TTL = 600.0
REDELIVERY_MAX = 10_000
DOUBLE_CLICK_SECONDS = 2.0


def install(app: AsyncApp, ctx: SlackContext) -> None:
    app.middleware(attach_context(ctx))
    app.middleware(drop_redeliveries(RecentKeys(), RecentKeys(ttl=DOUBLE_CLICK_SECONDS), ctx.deliveries))
    app.middleware(admins_only(ctx))


def attach_context(ctx: SlackContext):
    async def attach(context: AsyncBoltContext, body: dict, next: Callable) -> None:
        context["ctx"] = ctx
        context["ack"] = Ack()  # see `guarded`
        response_url = context.response_url
        if response_url and not is_slack_url(response_url, context.client.base_url):
            log.warning("ignored a response_url outside Slack: %.100s", response_url)
            response_url = None  # answer in the user's DM instead
        context["reply"] = Reply(
            ack=context.ack,
            response_url=response_url,
            client=context.client,
            user_id=context.user_id,
            is_command="command" in body,
            locale=ctx.locale,
        )
        return await next()

    return attach


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


def drop_redeliveries(seen: RecentKeys, clicks: RecentKeys, guard: DeliveryGuard | None = None):
    """Drop a request whose delivery key was seen in the last ten minutes, or whose click was in the
    last two seconds. This process's own memory answers a repeat it saw itself without a query; the
    database (`guard`, shared by every bot process on PostgreSQL) decides the rest."""

    async def drop(body: dict, next: Callable) -> BoltResponse | None:
        ttls: dict[str, float] = {}
        for key, recent in ((delivery_key(body), seen), (click_key(body), clicks)):
            if key is None:
                continue
            if not recent.first_time(key):
                return _dropped(key)
            ttls[key] = recent.ttl
        if ttls and guard is not None and not await guard.first_time(ttls):
            return _dropped(", ".join(ttls))
        return await next()

    return drop


def _dropped(keys: str) -> BoltResponse:
    log.info("dropped a repeated request (%s)", keys)
    return BoltResponse(status=200, body="")


def admins_only(ctx: SlackContext):
    async def admit(body: dict, context: AsyncBoltContext, next: Callable) -> BoltResponse | None:
        user_id = context.user_id
        if user_id is None:  # nobody to check, so nobody is allowed: run nothing
            log.info("refused %s without a user id", _kind(body))
            return BoltResponse(status=200, body="")
        if await ctx.admins.is_admin(user_id):
            return await next()
        log.info("refused %s from non-admin %s", _kind(body), user_id)
        return _refuse(ctx, body, context)

    return admit


def _kind(body: dict) -> str:
    return str(body.get("command") or body.get("type") or "request")


def _refuse(ctx: SlackContext, body: dict, context: AsyncBoltContext) -> BoltResponse:
    """Answer a non-admin without running anything: ephemerally where Slack allows it."""
    text = t(ctx.locale, "error.not_admin")
    message = notice(text)
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
