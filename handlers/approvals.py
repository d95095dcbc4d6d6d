"""批准 / 拒绝 on an approval request (the deploy's card, or an approver's DM). Every click re-reads
the deploy: the service refuses the requester's own, a non-approver's, and any click after the
deploy was approved, rejected, expired or ended, and of two at once only the first counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.errors import InvalidInput
from bot.i18n import t
from bot.slack.blocks.messages import notice
from handlers.guard import Reply, guarded

if TYPE_CHECKING:
    from handlers.context import SlackContext


def register(app: AsyncApp) -> None:
    app.action("approve_deploy")(guarded(handle_approve))
    app.action("reject_deploy")(guarded(handle_reject))


async def handle_approve(ack: AsyncAck, action: dict, body: dict, ctx: SlackContext, reply: Reply) -> None:
    await ack()
    deploy = await ctx.service.approvals.approve(_deploy_id(action), body["user"]["id"])
    await reply(notice(t(ctx.locale, "cmd.approved", deploy_id=deploy.id)))


async def handle_reject(ack: AsyncAck, action: dict, body: dict, ctx: SlackContext, reply: Reply) -> None:
    await ack()
    deploy = await ctx.service.approvals.reject(_deploy_id(action), body["user"]["id"])
    await reply(notice(t(ctx.locale, "cmd.rejected", deploy_id=deploy.id)))


def _deploy_id(action: dict) -> int:
    value = str(action.get("value") or "")
    if not value.isdigit() or len(value) > 10:
        raise InvalidInput(detail="deploy id")
    return int(value)
