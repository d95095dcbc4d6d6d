"""`/deploy`: parse (bot/slack/grammar.py), call the service, render, answer ephemerally.

Everything that touches the database acks first and answers after, through the command's
response_url: Slack wants the ack within 3 s, and a busy database must never be the reason it
is late. Only help and usage errors, which need nothing but the command's text, go in the ack.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_sdk.web.async_client import AsyncWebClient

from bot.i18n import t
from bot.slack import grammar
from bot.slack.blocks.audit import PAGE_SIZE as AUDIT_PAGE_SIZE
from bot.slack.blocks.audit import audit_message
from bot.slack.blocks.card import deploy_card
from bot.slack.blocks.history import history_message
from bot.slack.blocks.messages import Message, help_message, notice
from bot.slack.blocks.runners import runners_message
from handlers.guard import Reply, guarded
from handlers.locks import lock_answer
from handlers.modals import open_deploy_modal, open_log_modal
from handlers.queueing import start_deploy

if TYPE_CHECKING:
    from handlers.context import SlackContext

HISTORY_PAGE_SIZE = 10
MAX_BLOCKS = 50


def register(app: AsyncApp) -> None:
    app.command("/deploy")(guarded(handle_deploy_command))


async def handle_deploy_command(
    ack: AsyncAck, command: dict, client: AsyncWebClient, ctx: SlackContext, reply: Reply
) -> None:
    parsed = grammar.parse(command.get("text") or "", ctx.config)
    user, channel, trigger_id = command["user_id"], command["channel_id"], command["trigger_id"]
    key = f"slack:{trigger_id}"  # slash commands carry no retry id; trigger_id is per invocation
    service, locale = ctx.service, ctx.locale
    match parsed:
        case grammar.OpenModal():
            await ack()
            await open_deploy_modal(ctx, client, trigger_id, channel=channel)
        case grammar.ShowHelp():
            await reply(help_message(grammar.help_rows(locale), locale))
        case grammar.StartDeploy() as start:
            await ack()
            await start_deploy(ctx, reply, start, user=user, channel=channel, key=key)
        case grammar.RollbackTo(target_id, reason):
            await ack()
            deploy = await service.rollback(
                target_id, user=user, reason=reason, channel=channel, request_key=key
            )
            await reply.card_problems(ctx, deploy)
        case grammar.CancelDeploy(deploy_id):
            await ack()
            await service.cancel(deploy_id, user=user)
            await reply(notice(t(locale, "cmd.cancel_requested", deploy_id=deploy_id)))
        case grammar.ShowLogs(deploy_id):
            await service.get(deploy_id)  # an unknown id is answered here, before the ack
            await ack()
            await open_log_modal(ctx, client, trigger_id, deploy_id)
        case grammar.ShowHistory(env, status, page):
            await ack()
            await reply(await history_answer(ctx, env, status, page))
        case grammar.ShowStatus(deploy_id):
            await ack()
            await reply(await status_message(ctx, deploy_id))
        case grammar.LockEnvironment() | grammar.UnlockEnvironment() | grammar.ShowLocks():
            await ack()
            await reply(await lock_answer(ctx, parsed, user))
        case grammar.ShowSchedule():
            await ack()
            await reply(await history_answer(ctx, None, "scheduled", 1))
        case grammar.ShowRunners():
            await ack()
            runners = await service.runners()
            now = datetime.now(UTC)
            await reply(runners_message(runners, ctx.config, locale, this_runner=service.runner_id, now=now))
        case grammar.ShowAudit(env, page):
            await ack()
            result = await service.audit(env, page, AUDIT_PAGE_SIZE)
            await reply(audit_message(result, ctx.config, locale, environment=env))


async def status_message(ctx: SlackContext, deploy_id: int | None) -> Message:
    """The card of one deploy, or of the latest deploy of every environment."""
    if deploy_id is not None:
        deploys = [await ctx.service.get(deploy_id)]
    else:
        deploys = []
        for name in ctx.config.environments:
            deploys.extend((await ctx.service.history(name, page_size=1)).items)
    if not deploys:
        return notice(t(ctx.locale, "cmd.no_deploys"))
    cards = [deploy_card(d, await ctx.notifier.card_context(d), ctx.locale) for d in deploys]
    blocks: list[dict] = []
    for card in cards:
        if len(blocks) + len(card.blocks) > MAX_BLOCKS:
            break
        blocks.extend(card.blocks)
    return Message(text="\n".join(card.text for card in cards), blocks=blocks)


async def history_answer(ctx: SlackContext, env: str | None, status: str | None, page: int) -> Message:
    """A history page, with each environment's live version marked (it offers 重新部署, not 回滚)."""
    result = await ctx.service.history(env, status, page, page_size=HISTORY_PAGE_SIZE)
    live = {}
    for name in {deploy.environment for deploy in result.items}:
        if current := await ctx.service.last_success(name):
            live[name] = current.id
    return history_message(result, ctx.config, ctx.locale, environment=env, status=status, live=live)
