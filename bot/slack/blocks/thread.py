"""Replies in a deploy's thread: one per step, quoting the last lines the previous step printed,
and the final reply that mentions the deployer: success with the duration and 回滚, or the error
and the last log lines. When the channel is busier than Slack lets the bot post, one reply carries
several steps (`steps_reply`), and steps still without a reply at the end go in the final reply.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.deploy.progress import Step
from bot.i18n import t
from bot.slack.blocks.card import CardContext, error_text, fallback_text, rollback_button, summary
from bot.slack.blocks.elements import MAX_SECTION, MAX_TEXT, button, section
from bot.slack.blocks.logs import log_sections
from bot.slack.blocks.messages import Message
from bot.slack.blocks.mrkdwn import clip, deployer, duration, escape, one_line, took_seconds
from storage.models import Deploy, Status

FINAL_TAIL_LINES = 30
MAX_STEP_LINES = 20  # step titles listed in one reply; past that the first and the newest


def step_reply(deploy: Deploy, step: Step, locale: str) -> Message:
    """`[2/7] 打包`, with the last lines the previous step printed."""
    return steps_reply(deploy, [step], locale)


def steps_reply(deploy: Deploy, steps: Sequence[Step], locale: str) -> Message:
    """One reply for steps that waited together (`[3/7] …`, `[4/7] …`, `[5/7] …`, one line each),
    with the last lines printed before the newest of them; for one step, its usual reply."""
    lines = _step_lines(steps, locale)
    blocks = [section("\n".join(shown for shown, _ in lines), "step_title")]
    sections, _ = log_sections(steps[-1].lines_before, 1, locale)
    blocks += [section(text, "step_log") for text in sections]
    return Message(clip(" · ".join(plain for _, plain in lines), MAX_TEXT), blocks)


def _step_lines(steps: Sequence[Step], locale: str) -> list[tuple[str, str]]:
    """Each step as (`*[2/7]* 打包`, `[2/7] 打包`). A run too long for one section keeps its first
    step and as many of the newest as fit, with `…` where the others were."""
    first, *rest = [_step_line(step, locale) for step in [*steps[:1], *steps[1:][-(MAX_STEP_LINES - 1) :]]]
    left_out = len(steps) > MAX_STEP_LINES
    room = MAX_SECTION - len(first[0]) - len("\n…")
    kept: list[tuple[str, str]] = []
    for line in reversed(rest):
        room -= len(line[0]) + 1
        if room < 0:
            left_out = True
            break
        kept.append(line)
    return [first, *([("…", "…")] if left_out else []), *reversed(kept)]


def _step_line(step: Step, locale: str) -> tuple[str, str]:
    title = escape(clip(one_line(step.title), 200)) or t(locale, "ui.step.untitled", current=step.number)
    counter = f"[{step.number}/{step.total}]" if step.total else f"[{step.number}]"
    return f"*{counter}* {title}", f"{counter} {title}"


def final_reply(
    deploy: Deploy, ctx: CardContext, tail: Sequence[str], locale: str, *, steps: Sequence[Step] = ()
) -> Message:
    """The thread's last word, mentioning the deployer: success with the duration and 回滚, or
    the error and the last log lines. `steps` that had no reply of their own are listed first."""
    who = deployer(deploy.deployed_by)
    took = t(locale, "ui.final.took", duration=duration(took_seconds(deploy), locale))
    lines = [f"{who} {summary(deploy, ctx.env, locale)}", took]
    if deploy.state is Status.CANCELLED:
        canceller = deploy.cancelled_by or deploy.cancel_requested_by
        if canceller:
            lines.append(t(locale, "ui.final.cancelled_by", user=deployer(canceller)))
    blocks = [section("\n".join(lines), "final_summary")]
    if steps:
        listed = "\n".join(shown for shown, _ in _step_lines(steps, locale))
        blocks.insert(0, section(listed, "final_steps"))
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
