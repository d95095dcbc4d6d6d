"""Modal submissions (deploy, rollback), a modal closed, and the environment chosen in the deploy modal.

A submission is checked by the service itself before the modal closes: the deploy (or rollback)
is asked for at once and, if the service refuses, the refusal is shown on the field it concerns
(`response_action: errors`). Should the service take longer than Slack's 3 seconds allow (a slow
remote repository), the modal closes and the outcome arrives as a message instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import (
    DeployError,
    DescriptionTooLong,
    InvalidBranch,
    RepoUnavailable,
    UnknownBranch,
)
from bot.slack.blocks.modals import deploy_modal
from handlers.guard import Reply, guarded
from handlers.modals import metadata, update_view
from storage.models import Deploy

if TYPE_CHECKING:
    from handlers.context import SlackContext

ACK_BUDGET = 2.0  # seconds the service gets to answer before the modal must close
MAX_FIELD_ERROR = 300
DEPLOY_FIELDS: dict[type[DeployError], str] = {
    InvalidBranch: "branch",
    UnknownBranch: "branch",
    RepoUnavailable: "branch",
    DescriptionTooLong: "description",
}


def register(app: AsyncApp) -> None:
    app.view("deploy_modal")(guarded(handle_deploy_submission))
    app.view("rollback_modal")(guarded(handle_rollback_submission))
    app.view_closed("deploy_modal")(guarded(handle_modal_closed))
    app.action("env_select")(guarded(handle_environment_chosen))


# --- submissions ----------------------------------------------------------------------------


async def handle_deploy_submission(
    ack: AsyncAck, body: dict, view: dict, ctx: SlackContext, reply: Reply
) -> None:
    values = view["state"]["values"]
    env = ((_field(values, "env", "env_select") or {}).get("selected_option") or {}).get("value")
    options = {
        o["value"]
        for o in (_field(values, "options", "options_checkboxes") or {}).get("selected_options") or []
    }
    user = body["user"]["id"]
    start = ctx.service.trigger(
        env or "",
        ((_only_field(values, "branch") or {}).get("value") or "").strip() or None,
        user=user,
        description=(_field(values, "description", "description_input") or {}).get("value") or "",
        skip_build="skip_build" in options,
        skip_migrations="skip_migrations" in options,
        channel=_card_channel(ctx, view, user),
        request_key=request_key(body),
    )
    deploy = await _submit(ack, ctx, start, DEPLOY_FIELDS, default_field="env")
    if deploy is not None:
        await reply.card_problems(ctx, deploy)


async def handle_rollback_submission(
    ack: AsyncAck, body: dict, view: dict, ctx: SlackContext, reply: Reply
) -> None:
    meta = metadata(view)
    user = body["user"]["id"]
    start = ctx.service.rollback(
        int(meta.get("target_id") or 0),
        user=user,
        reason=(_field(view["state"]["values"], "reason", "reason_input") or {}).get("value") or "",
        channel=_card_channel(ctx, view, user),
        request_key=request_key(body),
    )
    deploy = await _submit(ack, ctx, start, {}, default_field="reason")
    if deploy is not None:
        await reply.card_problems(ctx, deploy)


async def handle_modal_closed(ack: AsyncAck) -> None:
    await ack()


async def handle_environment_chosen(
    ack: AsyncAck, action: dict, body: dict, client: AsyncWebClient, ctx: SlackContext
) -> None:
    """Another environment chosen in the deploy modal: the branch field gets its default branch
    (what was typed into the description and the options stays)."""
    await ack()
    view = body["view"]
    chosen = (action.get("selected_option") or {}).get("value")
    new_view = deploy_modal(
        ctx.config, ctx.locale, metadata=view.get("private_metadata") or "", environment=chosen
    )
    await update_view(client, view, new_view)


def request_key(body: dict) -> str:
    """The idempotency key of the start a modal asks for. A modal's view id is unique to that
    opened modal, so a double-submitted (or redelivered) modal starts one deploy, not two; a
    refused submission wrote nothing, so fixing the field and submitting again still works."""
    view_id = (body.get("view") or {}).get("id")
    return f"slack:view:{view_id}" if view_id else f"slack:{body['trigger_id']}"


async def _submit(
    ack: AsyncAck,
    ctx: SlackContext,
    start: Awaitable[Deploy],
    fields: dict[type[DeployError], str],
    *,
    default_field: str,
) -> Deploy | None:
    """Ask the service; if it refuses in time, show why on the field concerned."""
    task = asyncio.ensure_future(start)
    done, _ = await asyncio.wait({task}, timeout=ACK_BUDGET)
    if not done:
        await ack()
        return await task  # a refusal now goes to the user as a message (see `guarded`)
    try:
        deploy = task.result()
    except DeployError as exc:
        field = fields.get(type(exc), default_field)
        await ack(response_action="errors", errors={field: exc.message(ctx.locale)[:MAX_FIELD_ERROR]})
        return None
    await ack()
    return deploy


def _card_channel(ctx: SlackContext, view: dict, user: str) -> str:
    """Where the card goes: the channel the modal was opened from, else the notify channel, else
    the user's DM with the app (a modal opened from App Home)."""
    return metadata(view).get("channel_id") or ctx.config.bot.notify_channel or user


def _field(values: dict, block_id: str, action_id: str) -> dict | None:
    return (values.get(block_id) or {}).get(action_id)


def _only_field(values: dict, block_id: str) -> dict | None:
    """The one element of an input block, whatever its action_id."""
    return next(iter((values.get(block_id) or {}).values()), None)
