"""Replies in a deploy's thread: one per step, quoting the last lines the previous step printed,
and the final reply that mentions the deployer: success with the duration and 回滚, or the error
and the last log lines.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.deploy.progress import Step
from bot.i18n import t
from bot.slack.blocks.card import CardContext, error_text, fallback_text, rollback_button, summary
from bot.slack.blocks.elements import MAX_TEXT, button, section
from bot.slack.blocks.logs import log_sections
from bot.slack.blocks.messages import Message
from bot.slack.blocks.mrkdwn import clip, deployer, duration, escape, one_line, took_seconds
from storage.models import Deploy, Status

FINAL_TAIL_LINES = 30


def step_reply(deploy: Deploy, step: Step, locale: str) -> Message:
    """`[2/7] 打包`, with the last lines the previous step printed."""
    title = escape(clip(one_line(step.title), 200)) or t(locale, "ui.step.untitled", current=step.number)
    counter = f"[{step.number}/{step.total}]" if step.total else f"[{step.number}]"
    blocks = [section(f"*{counter}* {title}", "step_title")]
    sections, _ = log_sections(step.lines_before, 1, locale)
    blocks += [section(text, "step_log") for text in sections]
    return Message(clip(f"{counter} {title}", MAX_TEXT), blocks)


def final_reply(deploy: Deploy, ctx: CardContext, tail: Sequence[str], locale: str) -> Message:
    """The thread's last word, mentioning the deployer: success with the duration and 回滚, or
    the error and the last log lines."""
    who = deployer(deploy.deployed_by)
    took = t(locale, "ui.final.took", duration=duration(took_seconds(deploy), locale))
    lines = [f"{who} {summary(deploy, ctx.env, locale)}", took]
    if deploy.state is Status.CANCELLED:
        canceller = deploy.cancelled_by or deploy.cancel_requested_by
        if canceller:
            lines.append(t(locale, "ui.final.cancelled_by", user=deployer(canceller)))
    blocks = [section("\n".join(lines), "final_summary")]
    if deploy.state is Status.FAILED and deploy.error_message:
        blocks.append(section(error_text(deploy.error_message, locale), "final_error"))
    if deploy.state is not Status.SUCCESS:
        sections, _ = log_sections(list(tail)[-FINAL_TAIL_LINES:], 1, locale)
        blocks += [section(text, "final_tail") for text in sections]
    buttons = [button(t(locale, "ui.button.view_logs"), "view_logs", deploy.id)]
    if deploy.state is Status.SUCCESS and ctx.rollback_target is not None:
        buttons.append(rollback_button(deploy, ctx.rollback_target, ctx.env, locale))
    blocks.append({"type": "actions", "block_id": "final_actions", "elements": buttons})
    return Message(f"{who} {fallback_text(deploy, ctx.env, locale)} · {took}", blocks)
