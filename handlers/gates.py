"""The 继续 / 中止 buttons of a gate (DESIGN §9), on a deploy's card and in its thread.

The button's value names the deploy and the gate; the service checks everything else on every
click (who may answer, whether that gate is still open), so a second click, a click after the
deploy ended or on an earlier question's button is refused with a message to the clicker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.errors import InvalidInput
from bot.i18n import t
from bot.slack.blocks.gate import ANSWER_OF, read_gate_value
from bot.slack.blocks.messages import notice
from handlers.guard import Reply, guarded

if TYPE_CHECKING:
    from handlers.context import SlackContext


def register(app: AsyncApp) -> None:
    for action_id in ANSWER_OF:
        app.action(action_id)(guarded(handle_gate_answer))


async def handle_gate_answer(
    ack: AsyncAck, action: dict, body: dict, ctx: SlackContext, reply: Reply
) -> None:
    await ack()
    try:
        deploy_id, asked_at = read_gate_value(str(action.get("value") or ""))
    except ValueError:
        raise InvalidInput(detail="gate") from None
    answer = ANSWER_OF[action["action_id"]]
    await ctx.service.answer_gate(deploy_id, user=body["user"]["id"], answer=answer, asked_at=asked_at)
    label = t(ctx.locale, f"ui.gate.answer.{answer}")
    await reply(notice(t(ctx.locale, "cmd.gate_answered", deploy_id=deploy_id, answer=label)))
