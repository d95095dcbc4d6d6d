"""Environment locks from Slack: `/deploy lock`, `/deploy unlock` and `/deploy locks` (answered for
handlers/commands.py), and the 延长 1 小时 / 解锁 buttons of the reminder DM, whose answer replaces
the reminder. The service checks who may do what; a refusal is answered by the guard."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.errors import InvalidInput
from bot.slack import grammar
from bot.slack.blocks.locks import locked_notice, locks_message, unlocked_notice
from bot.slack.blocks.messages import Message
from handlers.guard import Reply, guarded
from storage.models import utcnow

if TYPE_CHECKING:
    from handlers.context import SlackContext

LockCommand = grammar.LockEnvironment | grammar.UnlockEnvironment | grammar.ShowLocks


def register(app: AsyncApp) -> None:
    app.action("lock_extend")(guarded(handle_lock_extend))
    app.action("lock_release")(guarded(handle_lock_release))


async def lock_answer(ctx: SlackContext, command: LockCommand, user: str) -> Message:
    """Do what a lock command asks and say how it went."""
    locks, locale = ctx.service.locks, ctx.locale
    match command:
        case grammar.LockEnvironment(env, minutes, reason):
            extending = (await locks.current(env)) is not None
            lock = await locks.lock(env, user=user, duration=minutes, reason=reason)
            return locked_notice(
                lock, ctx.config.environments[lock.environment], locale, extended=extending, now=utcnow()
            )
        case grammar.UnlockEnvironment(env):
            lock = await locks.unlock(env, user=user)
            return unlocked_notice(lock, ctx.config.environments[lock.environment], locale, by=user)
        case grammar.ShowLocks():
            return locks_message(await locks.all(), ctx.config, locale, now=utcnow())


async def handle_lock_extend(
    ack: AsyncAck, action: dict, body: dict, ctx: SlackContext, reply: Reply
) -> None:
    await ack()
    lock = await ctx.service.locks.extend(environment(action), user=body["user"]["id"])
    env = ctx.config.environments[lock.environment]
    await reply(locked_notice(lock, env, ctx.locale, extended=True, now=utcnow()), replace=True)


async def handle_lock_release(
    ack: AsyncAck, action: dict, body: dict, ctx: SlackContext, reply: Reply
) -> None:
    await ack()
    user = body["user"]["id"]
    lock = await ctx.service.locks.unlock(environment(action), user=user)
    env = ctx.config.environments[lock.environment]
    await reply(unlocked_notice(lock, env, ctx.locale, by=user), replace=True)


def environment(action: dict) -> str:
    value = str(action.get("value") or "")
    if not value or len(value) > 64:
        raise InvalidInput(detail=f"environment {value[:20]!r}")
    return value
