"""Buttons and menus on cards, history messages, modals and App Home.

A button can be old: every click re-reads the deploy and lets the service re-check it (a finished
deploy cannot be cancelled, a rollback target must still be eligible); the clicker's permission
was checked by the admin middleware before any of this runs.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import InvalidInput
from bot.i18n import t
from bot.slack.blocks.messages import notice
from handlers.commands import history_answer
from handlers.guard import Reply, guarded
from handlers.modals import (
    history_modal,
    log_modal,
    metadata,
    open_deploy_modal,
    open_log_modal,
    open_modal,
    open_rollback_modal,
    update_view,
)

if TYPE_CHECKING:
    from handlers.context import SlackContext

NO_FILTER = "all"


def register(app: AsyncApp) -> None:
    app.action("view_logs")(guarded(handle_view_logs))
    app.action("refresh_logs")(guarded(handle_refresh_logs))
    app.action("cancel_deploy")(guarded(handle_cancel_deploy))
    app.action("rollback")(guarded(handle_rollback))
    app.action("rollback_to")(guarded(handle_rollback_to))
    app.action("open_deploy_modal")(guarded(handle_open_deploy_modal))
    app.action("home_open_history")(guarded(handle_home_open_history))
    for action_id in ("history_env", "history_status", "history_prev", "history_next"):
        app.action(action_id)(guarded(handle_history_change))


async def handle_view_logs(
    ack: AsyncAck, action: dict, body: dict, client: AsyncWebClient, ctx: SlackContext
) -> None:
    await ack()
    await open_log_modal(ctx, client, body["trigger_id"], deploy_id(action), push=in_modal(body))


async def handle_refresh_logs(
    ack: AsyncAck, action: dict, body: dict, client: AsyncWebClient, ctx: SlackContext
) -> None:
    await ack()
    view = body["view"]
    target = metadata(view).get("deploy_id") or deploy_id(action)
    await update_view(client, view, await log_modal(ctx, int(target)))


async def handle_cancel_deploy(
    ack: AsyncAck, action: dict, body: dict, ctx: SlackContext, reply: Reply
) -> None:
    await ack()
    deploy = await ctx.service.cancel(deploy_id(action), user=body["user"]["id"])
    await reply(notice(t(ctx.locale, "cmd.cancel_requested", deploy_id=deploy.id)))


async def handle_rollback(
    ack: AsyncAck, action: dict, body: dict, client: AsyncWebClient, ctx: SlackContext, reply: Reply
) -> None:
    """回滚 on a success card: undo that deploy, i.e. go back to the version live before it."""
    await ack()
    undo = await ctx.service.get(deploy_id(action))
    target = await ctx.service.rollback_target_for(undo)
    if target is None:
        await reply(notice(t(ctx.locale, "cmd.no_rollback_target", deploy_id=undo.id)))
        return
    await open_rollback_modal(
        ctx, client, body["trigger_id"], target, undo=undo, channel=channel_of(body), push=in_modal(body)
    )


async def handle_rollback_to(
    ack: AsyncAck, action: dict, body: dict, client: AsyncWebClient, ctx: SlackContext
) -> None:
    """回滚到此版本 on a history row: restore that very deploy's version."""
    await ack()
    target = await ctx.service.get(deploy_id(action))
    await open_rollback_modal(
        ctx, client, body["trigger_id"], target, undo=None, channel=channel_of(body), push=in_modal(body)
    )


async def handle_open_deploy_modal(
    ack: AsyncAck, body: dict, client: AsyncWebClient, ctx: SlackContext
) -> None:
    await ack()
    await open_deploy_modal(ctx, client, body["trigger_id"], channel=channel_of(body), push=in_modal(body))


async def handle_home_open_history(
    ack: AsyncAck, action: dict, body: dict, client: AsyncWebClient, ctx: SlackContext
) -> None:
    await ack()
    env = ctx.service.resolve_environment(action.get("value")).name
    message = await history_answer(ctx, env, None, 1)
    await open_modal(client, body["trigger_id"], history_modal(message, ctx.locale), push=in_modal(body))


async def handle_history_change(
    ack: AsyncAck, action: dict, body: dict, client: AsyncWebClient, ctx: SlackContext, reply: Reply
) -> None:
    """A filter or page of a history list: redraw the list where it is (ephemeral message or modal)."""
    await ack()
    env, status, page = history_filters(action, body)
    message = await history_answer(ctx, env, status, page)
    if in_modal(body):
        await update_view(client, body["view"], history_modal(message, ctx.locale))
    else:
        await reply(message, replace=True)


# --- reading clicks -------------------------------------------------------------------------


def deploy_id(action: dict) -> int:
    value = str(action.get("value") or "")
    if not value.isdigit():
        raise InvalidInput(detail=f"deploy id {value[:20]!r}")
    return int(value)


def in_modal(body: dict) -> bool:
    return (body.get("container") or {}).get("type") == "view" and (body.get("view") or {}).get(
        "type"
    ) == "modal"


def channel_of(body: dict) -> str | None:
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")


def history_filters(action: dict, body: dict) -> tuple[str | None, str | None, int]:
    """(environment, status, page) after this click: pager buttons carry all three in their value;
    a filter menu gives its own new value, the other menu's current value is in the state, and
    the list starts again at page 1."""
    if action["action_id"] in ("history_prev", "history_next"):
        try:
            value = json.loads(action.get("value") or "{}")
            return value.get("env") or None, value.get("status") or None, max(1, int(value.get("page") or 1))
        except (ValueError, TypeError, AttributeError):
            raise InvalidInput(detail="page") from None
    chosen: dict[str, str | None] = {"history_env": None, "history_status": None}
    state = (body.get("view") or {}).get("state") or body.get("state") or {}
    for block in (state.get("values") or {}).values():
        for action_id, element in block.items():
            if action_id in chosen:
                chosen[action_id] = _selected(element)
    chosen[action["action_id"]] = _selected(action)
    return chosen["history_env"], chosen["history_status"], 1


def _selected(element: dict) -> str | None:
    value = (element.get("selected_option") or {}).get("value")
    return None if value in (None, NO_FILTER) else value
