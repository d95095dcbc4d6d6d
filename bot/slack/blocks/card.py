"""The live channel card of one deploy, updated in place: status, environment, branch, commit,
deployer, a text progress bar with the current step, the time spent, and its buttons (查看日志;
取消部署 with a confirm while it runs; 回滚 on success), and the question of a gate with 继续 / 中止
while the script waits at one. Its summary, progress line, step label and
rollback button are reused by the thread, the log modal and App Home.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.config import Environment
from bot.deploy.changes import Changes
from bot.deploy.freeze import shown
from bot.i18n import t
from bot.slack.blocks.approval import approval_blocks
from bot.slack.blocks.elements import MAX_FIELD, button, confirm_dialog, context, mrkdwn_text, section
from bot.slack.blocks.gate import gate_blocks
from bot.slack.blocks.locks import lock_line
from bot.slack.blocks.logs import CODE_FENCE, code_line
from bot.slack.blocks.messages import Message
from bot.slack.blocks.mrkdwn import (
    EMOJI,
    clip,
    code,
    commit,
    deployer,
    duration,
    elapsed_seconds,
    env_label,
    env_title,
    escape,
    inline_code_text,
    one_line,
    stamp,
    took_seconds,
)
from storage.models import Deploy, EnvironmentLock, Status

BAR_FULL, BAR_EMPTY = "█", "░"


@dataclass(frozen=True)
class CardContext:
    env: Environment | None  # None when the environment was removed from the config
    now: datetime
    estimate: float | None = None  # seconds; drives the bar when the script prints no markers
    rollback_target: Deploy | None = None  # success cards: the version live before (回滚 button)
    lock: EnvironmentLock | None = None  # the environment's lock, shown as a line of its own
    queue_position: int | None = None  # queued cards: 1 = next to start
    changes: Changes | None = None  # awaiting approval: the commits it would bring or take away
    failed_ahead: Deploy | None = None  # from the queue: the deploy before it failed, the queue went on
    zone: str = "UTC"  # [bot] timezone: how a scheduled deploy's time is shown


def progress_bar(current: int, total: int, width: int = 10) -> str:
    """`██░░░░░░░░`: a started step counts, so step 1 of 7 already shows."""
    if total <= 0 or width <= 0:
        return f"`{BAR_EMPTY * max(width, 1)}`"
    current = min(max(current, 0), total)
    filled = -(-current * width // total)
    return f"`{BAR_FULL * filled}{BAR_EMPTY * (width - filled)}`"


def deploy_card(deploy: Deploy, ctx: CardContext, locale: str) -> Message:
    prefix = f"deploy_{deploy.id}"
    blocks = [
        section(summary(deploy, ctx.env, locale), f"{prefix}_summary"),
        {"type": "section", "block_id": f"{prefix}_fields", "fields": _card_fields(deploy, ctx, locale)},
        context(
            progress_text(deploy, ctx.estimate, ctx.now, locale, position=ctx.queue_position, zone=ctx.zone),
            f"{prefix}_progress",
        ),
    ]
    if deploy.state is Status.FAILED and deploy.error_message:
        blocks.append(section(error_text(deploy.error_message, locale), f"{prefix}_error"))
    if ctx.lock is not None:
        blocks.append(context(lock_line(ctx.lock, locale), f"{prefix}_lock"))
    if ctx.failed_ahead is not None:
        note = t(locale, "ui.card.failed_ahead", deploy_id=ctx.failed_ahead.id)
        blocks.append(context(note, f"{prefix}_failed_ahead"))
    blocks += gate_blocks(deploy, ctx.env, locale, prefix)  # a question the script waits at
    if deploy.state is Status.AWAITING_APPROVAL:
        blocks += approval_blocks(deploy, ctx.env, ctx.changes, locale)
    buttons = _card_buttons(deploy, ctx, locale)
    blocks.append({"type": "actions", "block_id": f"{prefix}_actions", "elements": buttons})
    return Message(fallback_text(deploy, ctx.env, locale), blocks)


def summary(deploy: Deploy, env: Environment | None, locale: str) -> str:
    """`:white_check_mark: *部署成功* #42 · 生产环境 (`production`)`, plus what a rollback restores."""
    status = t(locale, f"status.{deploy.status}")
    text = f"{EMOJI[deploy.state]} *{status}* #{deploy.id} · {env_title(env, deploy.environment)}"
    if deploy.rollback_of:
        restores = t(locale, "ui.card.rollback_of", deploy_id=deploy.rollback_of)
        text += f" · :leftwards_arrow_with_hook: {restores}"
    return text


def _card_fields(deploy: Deploy, ctx: CardContext, locale: str) -> list[dict]:
    running = deploy.state.is_active
    pairs = [
        ("ui.field.branch", code(deploy.branch)),
        ("ui.field.commit", commit(deploy, ctx.env, locale)),
        ("ui.field.deployer", deployer(deploy.deployed_by)),
        (
            "ui.field.elapsed" if running else "ui.field.duration",
            duration(elapsed_seconds(deploy, ctx.now) if running else took_seconds(deploy), locale),
        ),
    ]
    options = [
        t(locale, f"ui.option.{name}") for name in ("skip_build", "skip_migrations") if getattr(deploy, name)
    ]
    if options:
        pairs.append(("ui.field.options", " · ".join(options)))
    if deploy.description:
        pairs.append(("ui.field.description", escape(clip(deploy.description, 300))))
    if deploy.forced_by:
        reason = escape(clip(one_line(deploy.force_reason or ""), 200))
        pairs.append(("ui.field.forced", f"{deployer(deploy.forced_by)} · {reason}"))
    return [mrkdwn_text(clip(f"*{t(locale, key)}*\n{value}", MAX_FIELD)) for key, value in pairs]


def progress_text(
    deploy: Deploy,
    estimate: float | None,
    now: datetime,
    locale: str,
    *,
    position: int | None = None,
    zone: str = "UTC",
) -> str:
    """The bar and where the deploy is: waiting, the step it runs (or an estimate), how it ended."""
    state = deploy.state
    if state is Status.SCHEDULED and deploy.scheduled_at is not None:
        return f"{progress_bar(0, 1)} {t(locale, 'ui.progress.scheduled', when=shown(deploy.scheduled_at, zone))}"
    if state is Status.QUEUED:
        where = t(locale, "ui.progress.queued", position=position) if position else t(locale, "status.queued")
        return f"{progress_bar(0, 1)} {where}"
    if state is Status.PENDING:
        return f"{progress_bar(0, 1)} {t(locale, 'ui.progress.waiting')}"
    if state is Status.RUNNING:
        return _running_progress(deploy, estimate, now, locale)
    step = step_label(deploy, locale)
    bar = (
        progress_bar(1, 1)
        if state is Status.SUCCESS
        else progress_bar(deploy.step_current or 0, deploy.step_total or 1)
    )
    ended = stamp(deploy.completed_at or now)
    if state is Status.SUCCESS:
        tail = t(locale, "ui.progress.done", time=ended)
    elif state is Status.CANCELLED:
        who = deploy.cancelled_by or deploy.cancel_requested_by
        tail = t(locale, "ui.progress.cancelled", user=deployer(who), time=ended)
    else:
        tail = t(locale, "ui.progress.failed", time=ended)
    return " · ".join(part for part in (f"{bar} {step}".rstrip(), tail) if part)


def _running_progress(deploy: Deploy, estimate: float | None, now: datetime, locale: str) -> str:
    elapsed = elapsed_seconds(deploy, now)
    if deploy.step_current:
        bar = progress_bar(deploy.step_current, deploy.step_total or deploy.step_current + 1)
        spent = t(locale, "ui.progress.elapsed", elapsed=duration(elapsed, locale))
        return f"{bar} {step_label(deploy, locale)} · {spent}"
    if estimate and estimate > 0:
        if elapsed >= estimate:
            text = t(
                locale,
                "ui.progress.overdue",
                elapsed=duration(elapsed, locale),
                estimate=duration(estimate, locale),
            )
            return f"{progress_bar(99, 100)} {text}"
        percent = int(elapsed * 100 // estimate)
        text = t(
            locale,
            "ui.progress.estimate",
            percent=percent,
            elapsed=duration(elapsed, locale),
            estimate=duration(estimate, locale),
        )
        return f"{progress_bar(percent, 100)} {text}"
    return t(locale, "ui.progress.elapsed", elapsed=duration(elapsed, locale))


def step_label(deploy: Deploy, locale: str) -> str:
    """The step a deploy reached (`3/7 数据库迁移`); empty when the script printed no markers."""
    if not deploy.step_current:
        return ""
    title = escape(clip(one_line(deploy.step_title or ""), 100))
    if deploy.step_total:
        return f"{deploy.step_current}/{deploy.step_total} {title}".rstrip()
    return t(locale, "ui.progress.step_open", current=deploy.step_current, title=title).rstrip()


def _card_buttons(deploy: Deploy, ctx: CardContext, locale: str) -> list[dict]:
    if deploy.state is Status.SCHEDULED:  # nothing ran yet: it can only be called off
        return [_cancel_button(deploy, ctx.env, locale)]
    if deploy.state is Status.QUEUED:  # no log yet; it can only leave the queue
        return [button(t(locale, "ui.button.cancel_queue"), "cancel_queued", deploy.id)]
    buttons = [button(t(locale, "ui.button.view_logs"), "view_logs", deploy.id)]
    if deploy.state.is_active:
        buttons.append(_cancel_button(deploy, ctx.env, locale))
    elif deploy.state is Status.SUCCESS and ctx.rollback_target is not None:
        buttons.append(rollback_button(deploy, ctx.rollback_target, ctx.env, locale))
    return buttons


def _cancel_button(deploy: Deploy, env: Environment | None, locale: str) -> dict:
    text = t(
        locale,
        "ui.confirm.cancel.text",
        env=escape(clip(env_label(env, deploy.environment), 40)),
        deploy_id=deploy.id,
        branch=inline_code_text(clip(deploy.branch, 40)),
    )
    confirm = confirm_dialog(locale, "cancel", text)
    return button(t(locale, "ui.button.cancel"), "cancel_deploy", deploy.id, style="danger", confirm=confirm)


def rollback_button(undo: Deploy, target: Deploy, env: Environment | None, locale: str) -> dict:
    """回滚 on a success: value is the deploy being undone; the text and confirm name the target."""
    text = t(
        locale,
        "ui.confirm.rollback.text",
        env=escape(clip(env_label(env, undo.environment), 40)),
        deploy_id=target.id,
        commit=target.short_commit or "—",
    )
    label = t(locale, "ui.button.rollback", deploy_id=target.id)
    confirm = confirm_dialog(locale, "rollback", text)
    return button(label, "rollback", undo.id, style="danger", confirm=confirm)


def fallback_text(deploy: Deploy, env: Environment | None, locale: str) -> str:
    """`:white_check_mark: 部署成功 #42 生产环境 main 3f9c2ab`"""
    parts = [
        EMOJI[deploy.state],
        t(locale, f"status.{deploy.state.value}"),
        f"#{deploy.id}",
        escape(env_label(env, deploy.environment)),
        escape(clip(deploy.branch, 100)),
        deploy.short_commit,
    ]
    return " ".join(part for part in parts if part)


def error_text(error: str, locale: str) -> str:
    """The error of a failed deploy as a labelled code block."""
    # 500 characters stay within a section even if every one of them is escaped to five
    body = code_line(error, 500)
    return f"*{t(locale, 'ui.field.error')}*\n{CODE_FENCE.format(body)}"
