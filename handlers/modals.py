"""Opening modals (deploy, rollback, log, history) and replacing an open one; reading the
private_metadata this app writes into them. Used by commands, actions and views alike."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.i18n import t
from bot.slack.blocks import modals
from bot.slack.blocks.messages import Message
from storage.models import Deploy

if TYPE_CHECKING:
    from handlers.context import SlackContext


async def open_modal(client: AsyncWebClient, trigger_id: str, view: dict, *, push: bool = False) -> None:
    """Open `view`, or stack it on top when the click came from a modal already open."""
    if push:
        await client.views_push(trigger_id=trigger_id, view=view)
    else:
        await client.views_open(trigger_id=trigger_id, view=view)


async def open_deploy_modal(
    ctx: SlackContext, client: AsyncWebClient, trigger_id: str, *, channel: str | None, push: bool = False
) -> None:
    meta = json.dumps({"channel_id": channel})
    await open_modal(
        client, trigger_id, modals.deploy_modal(ctx.config, ctx.locale, metadata=meta), push=push
    )


async def open_log_modal(
    ctx: SlackContext, client: AsyncWebClient, trigger_id: str, deploy_id: int, *, push: bool = False
) -> None:
    await open_modal(client, trigger_id, await log_modal(ctx, deploy_id), push=push)


async def log_modal(ctx: SlackContext, deploy_id: int) -> dict:
    tail = await ctx.service.log_tail(deploy_id)
    env = ctx.config.environments.get(tail.deploy.environment)
    return modals.log_modal(tail.deploy, env, tail.text, ctx.locale, truncated=tail.offset > 0)


async def open_rollback_modal(
    ctx: SlackContext,
    client: AsyncWebClient,
    trigger_id: str,
    target: Deploy,
    *,
    undo: Deploy | None,
    channel: str | None,
    push: bool = False,
) -> None:
    """Ask for a reason before rolling back to `target`; refuses at once if it is not eligible."""
    await ctx.service.check_rollback_target(target)
    meta = json.dumps({"target_id": target.id, "undo_id": undo.id if undo else None, "channel_id": channel})
    env = ctx.config.environments.get(target.environment)
    changes = await ctx.service.changes_for(target)
    view = modals.rollback_modal(target, env, ctx.locale, metadata=meta, undo=undo, changes=changes)
    await open_modal(client, trigger_id, view, push=push)


def history_modal(message: Message, locale: str) -> dict:
    """The history message shown as a modal, for clicks that have no channel to answer in
    (App Home)."""
    return {
        "type": "modal",
        "callback_id": "deploy_history",
        "title": {"type": "plain_text", "text": t(locale, "cmd.history_title")},
        "close": {"type": "plain_text", "text": t(locale, "cmd.close")},
        "blocks": message.blocks,
    }


async def update_view(client: AsyncWebClient, view: dict, new_view: dict) -> None:
    """Replace an open modal; a `hash_conflict` means someone else just replaced it: theirs wins."""
    try:
        await client.views_update(view_id=view["id"], hash=view.get("hash"), view=new_view)
    except SlackApiError as exc:
        if exc.response.get("error") != "hash_conflict":
            raise


def metadata(view: dict) -> dict:
    """A modal's private_metadata, which this app always writes as a JSON object."""
    try:
        value = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
