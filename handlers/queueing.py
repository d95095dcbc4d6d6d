"""Starting a deploy from `/deploy <env> …`, and the deploy queue in Slack (DESIGN §9): a busy
environment answers with the 排队 button, which queues the same deploy (once, however often it is
pressed); a queued deploy's card offers 取消排队."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.errors import EnvironmentBusy, InvalidInput
from bot.i18n import t
from bot.slack.blocks.messages import notice
from bot.slack.blocks.mrkdwn import env_label
from bot.slack.blocks.queue import QueueOffer, busy_refusal, read_offer
from bot.slack.grammar import StartDeploy
from handlers.guard import Reply, guarded
from storage.models import Deploy, Status

if TYPE_CHECKING:
    from handlers.context import SlackContext


def register(app: AsyncApp) -> None:
    app.action("queue_deploy")(guarded(handle_queue_deploy))
    app.action("cancel_queued")(guarded(handle_cancel_queued))


async def start_deploy(
    ctx: SlackContext, reply: Reply, start: StartDeploy, *, user: str, channel: str, key: str
) -> None:
    """`/deploy <env> …`: start it (or queue it, with --queue); a busy environment is answered
    with the refusal and its 排队 button."""
    try:
        deploy = await ctx.service.trigger(
            start.env,
            start.branch,
            user=user,
            description=start.description,
            skip_build=start.skip_build,
            skip_migrations=start.skip_migrations,
            channel=channel,
            request_key=key,
            queue=start.queue,
            force=start.force,
            at=start.when,
        )
    except EnvironmentBusy as exc:
        offer = QueueOffer(
            env=start.env,
            branch=start.branch,
            skip_build=start.skip_build,
            skip_migrations=start.skip_migrations,
            description=start.description,
            force=start.force,
            key=key,
        )
        await reply(busy_refusal(exc, offer, _label(ctx, start.env), ctx.locale))
        return
    await reply.card_problems(ctx, deploy)


async def handle_queue_deploy(
    ack: AsyncAck, action: dict, body: dict, ctx: SlackContext, reply: Reply
) -> None:
    """排队 on a busy refusal: the same deploy, queued (or started, if the environment is free by
    now). Its request key comes from the refused command, so a second click finds the first."""
    await ack()
    try:
        offer = read_offer(str(action.get("value") or ""))
    except ValueError:
        raise InvalidInput(detail="queue") from None
    deploy = await ctx.service.trigger(
        offer.env,
        offer.branch,
        user=body["user"]["id"],
        description=offer.description,
        skip_build=offer.skip_build,
        skip_migrations=offer.skip_migrations,
        channel=_channel(body),
        request_key=offer.request_key,
        queue=True,
        force=offer.force,
    )
    await reply(notice(await queued_text(ctx, deploy)), replace=True)
    await reply.card_problems(ctx, deploy)


async def handle_cancel_queued(
    ack: AsyncAck, action: dict, body: dict, ctx: SlackContext, reply: Reply
) -> None:
    """取消排队 on a queued card (the requester's own, or anyone's for a manager)."""
    await ack()
    value = str(action.get("value") or "")
    if not value.isascii() or not value.isdigit() or len(value) > 10:
        raise InvalidInput(detail=f"deploy id {value[:20]!r}")
    deploy = await ctx.service.cancel(int(value), user=body["user"]["id"])
    key = "cmd.queue_cancelled" if deploy.state is Status.CANCELLED else "cmd.cancel_requested"
    await reply(notice(t(ctx.locale, key, deploy_id=deploy.id)))


async def queued_text(ctx: SlackContext, deploy: Deploy) -> str:
    env = _label(ctx, deploy.environment)
    if deploy.state is Status.QUEUED:
        position = await ctx.service.queue_position(deploy)
        return t(ctx.locale, "cmd.queued", env=env, deploy_id=deploy.id, position=position)
    return t(ctx.locale, "cmd.queue_started", env=env, deploy_id=deploy.id)


def _label(ctx: SlackContext, name: str) -> str:
    return env_label(ctx.config.environments.get(name), name)


def _channel(body: dict) -> str | None:
    return (body.get("channel") or {}).get("id") or (body.get("container") or {}).get("channel_id")
