"""Block Kit for everything the bot shows in Slack: pure functions from rows and config to dicts.

Nothing here does I/O or asks the service; callers pass everything in. Every output stays inside
Slack's limits whatever the input (a 1 MB log line, 10,000 lines of output, a 2,000-character
description), and everything a user or a script wrote is escaped for mrkdwn, so a branch or a log
line can neither mention @channel nor break the layout. tests/blockkit.py checks the outputs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.config import Config, Environment
from bot.i18n import t
from bot.deploy.progress import Step
from storage.models import Deploy, Status
from storage.repository import Page

MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION = 3000
MAX_FIELD = 2000
MAX_TEXT = 4000  # top-level fallback text: Slack allows 40,000, a notification needs far less
MAX_BUTTON = 75
MAX_OPTION = 75
MAX_OPTIONS = 100
MAX_INPUT = 2000  # longest description or reason the service accepts
MAX_BRANCH = 255
MAX_LOG_LINE = 300  # characters of one log line shown; the whole line is in the log file
FINAL_TAIL_LINES = 30
LOG_MODAL_SECTIONS = 8
CODE_FENCE = "```\n{}\n```"
FENCE_COST = len(CODE_FENCE.format(""))
BAR_FULL, BAR_EMPTY = "█", "░"

EMOJI = {
    Status.PENDING: ":hourglass:",
    Status.RUNNING: ":hourglass_flowing_sand:",
    Status.SUCCESS: ":white_check_mark:",
    Status.FAILED: ":x:",
    Status.CANCELLED: ":no_entry_sign:",
}
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Links the bot writes itself (mentions, channels, URLs) and entities already escaped survive
# `_escape_prose`; anything else that looks like markup is escaped.
SAFE_MARKUP = re.compile(
    r"<@[UW][A-Z0-9]+>|<#C[A-Z0-9]+(?:\|[^<>]*)?>|<https?://[^\s<>|]+(?:\|[^<>]*)?>|&(?:amp|lt|gt);"
)


# --- public types ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """A chat message: always a text fallback (notifications, screen readers) plus blocks."""

    text: str
    blocks: list[dict]

    def as_kwargs(self) -> dict:
        return {"text": self.text, "blocks": self.blocks}


@dataclass(frozen=True)
class CardContext:
    env: Environment | None  # None when the environment was removed from the config
    now: datetime
    estimate: float | None = None  # seconds; drives the bar when the script prints no markers
    rollback_target: Deploy | None = None  # success cards: the version live before (回滚 button)


@dataclass(frozen=True)
class EnvHome:
    env: Environment
    live: Deploy | None
    running: Deploy | None
    estimate: float | None = None


# --- the deploy card ------------------------------------------------------------------------------


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
        _section(_summary(deploy, ctx.env, locale), f"{prefix}_summary"),
        {"type": "section", "block_id": f"{prefix}_fields", "fields": _card_fields(deploy, ctx, locale)},
        _context(_progress(deploy, ctx.estimate, ctx.now, locale), f"{prefix}_progress"),
    ]
    if deploy.state is Status.FAILED and deploy.error_message:
        blocks.append(_section(_error_text(deploy.error_message, locale), f"{prefix}_error"))
    buttons = _card_buttons(deploy, ctx, locale)
    blocks.append({"type": "actions", "block_id": f"{prefix}_actions", "elements": buttons})
    return Message(_fallback(deploy, ctx.env, locale), blocks)


def _summary(deploy: Deploy, env: Environment | None, locale: str) -> str:
    """`:white_check_mark: *部署成功* #42 · 生产环境 (`production`)`, plus what a rollback restores."""
    status = t(locale, f"status.{deploy.status}")
    text = f"{EMOJI[deploy.state]} *{status}* #{deploy.id} · {_env_title(env, deploy.environment)}"
    if deploy.rollback_of:
        restores = t(locale, "ui.card.rollback_of", deploy_id=deploy.rollback_of)
        text += f" · :leftwards_arrow_with_hook: {restores}"
    return text


def _card_fields(deploy: Deploy, ctx: CardContext, locale: str) -> list[dict]:
    running = deploy.state.is_active
    pairs = [
        ("ui.field.branch", _code(deploy.branch)),
        ("ui.field.commit", _commit(deploy, ctx.env, locale)),
        ("ui.field.deployer", _deployer(deploy.deployed_by)),
        (
            "ui.field.elapsed" if running else "ui.field.duration",
            _duration(_elapsed(deploy, ctx.now) if running else _took(deploy), locale),
        ),
    ]
    options = [
        t(locale, f"ui.option.{name}") for name in ("skip_build", "skip_migrations") if getattr(deploy, name)
    ]
    if options:
        pairs.append(("ui.field.options", " · ".join(options)))
    if deploy.description:
        pairs.append(("ui.field.description", _escape(_clip(deploy.description, 300))))
    return [_mrkdwn(_clip(f"*{t(locale, key)}*\n{value}", MAX_FIELD)) for key, value in pairs]


def _progress(deploy: Deploy, estimate: float | None, now: datetime, locale: str) -> str:
    state = deploy.state
    if state is Status.PENDING:
        return f"{progress_bar(0, 1)} {t(locale, 'ui.progress.waiting')}"
    if state is Status.RUNNING:
        return _running_progress(deploy, estimate, now, locale)
    step = _step_label(deploy, locale)
    bar = (
        progress_bar(1, 1)
        if state is Status.SUCCESS
        else progress_bar(deploy.step_current or 0, deploy.step_total or 1)
    )
    ended = _stamp(deploy.completed_at or now)
    if state is Status.SUCCESS:
        tail = t(locale, "ui.progress.done", time=ended)
    elif state is Status.CANCELLED:
        who = deploy.cancelled_by or deploy.cancel_requested_by
        tail = t(locale, "ui.progress.cancelled", user=_deployer(who), time=ended)
    else:
        tail = t(locale, "ui.progress.failed", time=ended)
    return " · ".join(part for part in (f"{bar} {step}".rstrip(), tail) if part)


def _running_progress(deploy: Deploy, estimate: float | None, now: datetime, locale: str) -> str:
    elapsed = _elapsed(deploy, now)
    if deploy.step_current:
        bar = progress_bar(deploy.step_current, deploy.step_total or deploy.step_current + 1)
        spent = t(locale, "ui.progress.elapsed", elapsed=_duration(elapsed, locale))
        return f"{bar} {_step_label(deploy, locale)} · {spent}"
    if estimate and estimate > 0:
        if elapsed >= estimate:
            text = t(
                locale,
                "ui.progress.overdue",
                elapsed=_duration(elapsed, locale),
                estimate=_duration(estimate, locale),
            )
            return f"{progress_bar(99, 100)} {text}"
        percent = int(elapsed * 100 // estimate)
        text = t(
            locale,
            "ui.progress.estimate",
            percent=percent,
            elapsed=_duration(elapsed, locale),
            estimate=_duration(estimate, locale),
        )
        return f"{progress_bar(percent, 100)} {text}"
    return t(locale, "ui.progress.elapsed", elapsed=_duration(elapsed, locale))


def _step_label(deploy: Deploy, locale: str) -> str:
    """The step a deploy reached (`3/7 数据库迁移`); empty when the script printed no markers."""
    if not deploy.step_current:
        return ""
    title = _escape(_clip(_one_line(deploy.step_title or ""), 100))
    if deploy.step_total:
        return f"{deploy.step_current}/{deploy.step_total} {title}".rstrip()
    return t(locale, "ui.progress.step_open", current=deploy.step_current, title=title).rstrip()


def _card_buttons(deploy: Deploy, ctx: CardContext, locale: str) -> list[dict]:
    buttons = [_button(t(locale, "ui.button.view_logs"), "view_logs", deploy.id)]
    if deploy.state.is_active:
        buttons.append(_cancel_button(deploy, ctx.env, locale))
    elif deploy.state is Status.SUCCESS and ctx.rollback_target is not None:
        buttons.append(_rollback_button(deploy, ctx.rollback_target, ctx.env, locale))
    return buttons


def _cancel_button(deploy: Deploy, env: Environment | None, locale: str) -> dict:
    text = t(
        locale,
        "ui.confirm.cancel.text",
        env=_escape(_clip(_env_label(env, deploy.environment), 40)),
        deploy_id=deploy.id,
        branch=_inline_code_text(_clip(deploy.branch, 40)),
    )
    confirm = _confirm(locale, "cancel", text)
    return _button(t(locale, "ui.button.cancel"), "cancel_deploy", deploy.id, style="danger", confirm=confirm)


def _rollback_button(undo: Deploy, target: Deploy, env: Environment | None, locale: str) -> dict:
    """回滚 on a success: value is the deploy being undone; the text and confirm name the target."""
    text = t(
        locale,
        "ui.confirm.rollback.text",
        env=_escape(_clip(_env_label(env, undo.environment), 40)),
        deploy_id=target.id,
        commit=target.short_commit or "—",
    )
    label = t(locale, "ui.button.rollback", deploy_id=target.id)
    confirm = _confirm(locale, "rollback", text)
    return _button(label, "rollback", undo.id, style="danger", confirm=confirm)


def _fallback(deploy: Deploy, env: Environment | None, locale: str) -> str:
    """`:white_check_mark: 部署成功 #42 生产环境 main 3f9c2ab`"""
    parts = [
        EMOJI[deploy.state],
        t(locale, f"status.{deploy.state.value}"),
        f"#{deploy.id}",
        _escape(_env_label(env, deploy.environment)),
        _escape(_clip(deploy.branch, 100)),
        deploy.short_commit,
    ]
    return " ".join(part for part in parts if part)


# --- thread replies -------------------------------------------------------------------------------


def step_reply(deploy: Deploy, step: Step, locale: str) -> Message:
    """`[2/7] 打包`, with the last lines the previous step printed."""
    title = _escape(_clip(_one_line(step.title), 200)) or t(locale, "ui.step.untitled", current=step.number)
    counter = f"[{step.number}/{step.total}]" if step.total else f"[{step.number}]"
    blocks = [_section(f"*{counter}* {title}", "step_title")]
    sections, _ = _log_sections(step.lines_before, 1, locale)
    blocks += [_section(text, "step_log") for text in sections]
    return Message(_clip(f"{counter} {title}", MAX_TEXT), blocks)


def final_reply(deploy: Deploy, ctx: CardContext, tail: Sequence[str], locale: str) -> Message:
    """The thread's last word, mentioning the deployer: success with the duration and 回滚, or
    the error and the last log lines."""
    who = _deployer(deploy.deployed_by)
    took = t(locale, "ui.final.took", duration=_duration(_took(deploy), locale))
    lines = [f"{who} {_summary(deploy, ctx.env, locale)}", took]
    if deploy.state is Status.CANCELLED:
        canceller = deploy.cancelled_by or deploy.cancel_requested_by
        if canceller:
            lines.append(t(locale, "ui.final.cancelled_by", user=_deployer(canceller)))
    blocks = [_section("\n".join(lines), "final_summary")]
    if deploy.state is Status.FAILED and deploy.error_message:
        blocks.append(_section(_error_text(deploy.error_message, locale), "final_error"))
    if deploy.state is not Status.SUCCESS:
        sections, _ = _log_sections(list(tail)[-FINAL_TAIL_LINES:], 1, locale)
        blocks += [_section(text, "final_tail") for text in sections]
    buttons = [_button(t(locale, "ui.button.view_logs"), "view_logs", deploy.id)]
    if deploy.state is Status.SUCCESS and ctx.rollback_target is not None:
        buttons.append(_rollback_button(deploy, ctx.rollback_target, ctx.env, locale))
    blocks.append({"type": "actions", "block_id": "final_actions", "elements": buttons})
    return Message(f"{who} {_fallback(deploy, ctx.env, locale)} · {took}", blocks)


def _error_text(error: str, locale: str) -> str:
    # 500 characters stay within a section even if every one of them is escaped to five
    body = _code_line(error, 500)
    return f"*{t(locale, 'ui.field.error')}*\n{CODE_FENCE.format(body)}"


# --- modals ---------------------------------------------------------------------------------------


def log_modal(
    deploy: Deploy, env: Environment | None, log_text: str, locale: str, *, truncated: bool
) -> dict:
    """The tail of a log (newest lines kept), with 刷新. `truncated`: `log_text` is itself only
    the end of the log."""
    blocks = [_section(_log_head(deploy, env, locale), "log_head")]
    sections, omitted = _log_sections(log_text.splitlines(), LOG_MODAL_SECTIONS, locale, note=False)
    if deploy.logs_cleared_at is not None and not log_text:
        blocks.append(_context(t(locale, "ui.log.cleared", time=_stamp(deploy.logs_cleared_at)), "log_note"))
    elif not sections:
        blocks.append(_context(t(locale, "ui.log.empty"), "log_note"))
    elif truncated or omitted:
        blocks.append(_context(t(locale, "ui.log.earlier"), "log_note"))
    blocks += [_section(text, f"log_tail_{index}") for index, text in enumerate(sections, 1)]
    refresh = _button(t(locale, "ui.button.refresh"), "refresh_logs", deploy.id)
    blocks.append({"type": "actions", "block_id": "log_actions", "elements": [refresh]})
    return _modal(
        "deploy_logs",
        t(locale, "ui.log.title", deploy_id=deploy.id),
        blocks,
        close=t(locale, "ui.modal.close"),
        metadata=json.dumps({"deploy_id": deploy.id}),
    )


def _log_head(deploy: Deploy, env: Environment | None, locale: str) -> str:
    parts = [
        f"*#{deploy.id}*",
        f"{EMOJI[deploy.state]} {t(locale, f'status.{deploy.state.value}')}",
        _env_title(env, deploy.environment),
        _code(deploy.branch),
    ]
    if deploy.commit_hash:
        parts.append(_commit(deploy, env, locale))
    if deploy.rollback_of:
        parts.append(t(locale, "ui.card.rollback_of", deploy_id=deploy.rollback_of))
    if step := _step_label(deploy, locale):
        parts.append(step)
    return _clip(" · ".join(parts), MAX_SECTION)


def rollback_modal(
    target: Deploy, env: Environment | None, locale: str, *, metadata: str, undo: Deploy | None = None
) -> dict:
    """Asks for an optional reason and names exactly what will be deployed again."""
    lines = [
        t(
            locale,
            "ui.rollback_modal.target",
            env=_env_title(env, target.environment),
            deploy_id=target.id,
            commit=_commit(target, env, locale),
            branch=_inline_code_text(_clip(target.branch, 200)),
            user=_deployer(target.deployed_by),
            time=_stamp(target.completed_at or target.created_at),
        )
    ]
    if undo is not None:
        lines.append(
            t(locale, "ui.rollback_modal.undo", deploy_id=undo.id, commit=_commit(undo, env, locale))
        )
    lines.append(t(locale, "ui.rollback_modal.note"))
    blocks = [
        _section(_clip("\n".join(lines), MAX_SECTION), "rollback_target"),
        _text_input(
            "reason", "reason_input", t(locale, "ui.rollback_modal.reason"), multiline=True, optional=True
        )
        | {
            "hint": _plain(
                t(locale, "ui.rollback_modal.reason_hint", deploy_id=target.id, commit=target.short_commit)
            )
        },
    ]
    return _modal(
        "rollback_modal",
        t(locale, "ui.rollback_modal.title"),
        blocks,
        submit=t(locale, "ui.rollback_modal.submit"),
        close=t(locale, "ui.modal.cancel"),
        metadata=metadata,
    )


def deploy_modal(
    config: Config, locale: str, *, metadata: str, environment: str | None = None, branch: str | None = None
) -> dict:
    """一键部署: environment (default: `environment`, else the default one), branch (default: that
    environment's default branch), description, skip options."""
    chosen = (config.environment(environment) if environment else None) or config.default_environment
    options = [_option(env.display, env.name) for env in list(config.environments.values())[:MAX_OPTIONS]]
    env_select = {
        "type": "static_select",
        "action_id": "env_select",
        "placeholder": _plain(t(locale, "ui.deploy_modal.env_placeholder")),
        "initial_option": _option(chosen.display, chosen.name),
        "options": options,
    }
    skip = [_option(t(locale, f"ui.option.{name}"), name) for name in ("skip_build", "skip_migrations")]
    blocks = [
        # Choosing another environment is sent at once (dispatch_action), and the modal comes back
        # with that environment's default branch. The branch field's action_id names the
        # environment: Slack keeps what was typed into an input only while its ids stay the same.
        _input("env", t(locale, "ui.deploy_modal.env"), env_select) | {"dispatch_action": True},
        _text_input(
            "branch",
            f"branch_input:{chosen.name}",
            t(locale, "ui.deploy_modal.branch"),
            initial=branch or chosen.default_branch,
        ),
        _text_input(
            "description",
            "description_input",
            t(locale, "ui.deploy_modal.description"),
            multiline=True,
            optional=True,
        ),
        _input(
            "options",
            t(locale, "ui.deploy_modal.options"),
            {"type": "checkboxes", "action_id": "options_checkboxes", "options": skip},
            optional=True,
        ),
    ]
    view = _modal(
        "deploy_modal",
        t(locale, "ui.deploy_modal.title"),
        blocks,
        submit=t(locale, "ui.deploy_modal.submit"),
        close=t(locale, "ui.modal.cancel"),
        metadata=metadata,
    )
    return view | {"notify_on_close": True}


def _modal(
    callback_id: str, title: str, blocks: list[dict], *, metadata: str, close: str, submit: str | None = None
) -> dict:
    view = {
        "type": "modal",
        "callback_id": callback_id,
        "title": _plain(_clip(title, 24)),
        "close": _plain(_clip(close, 24)),
        "blocks": blocks,
        "private_metadata": metadata,
    }
    if submit:
        view["submit"] = _plain(_clip(submit, 24))
    return view


def _input(block_id: str, label: str, element: dict, *, optional: bool = False) -> dict:
    return {
        "type": "input",
        "block_id": block_id,
        "label": _plain(label),
        "optional": optional,
        "element": element,
    }


def _text_input(
    block_id: str,
    action_id: str,
    label: str,
    *,
    initial: str | None = None,
    multiline: bool = False,
    optional: bool = False,
) -> dict:
    element: dict = {"type": "plain_text_input", "action_id": action_id}
    if initial:
        element["initial_value"] = initial[:MAX_BRANCH]
    if multiline:
        element["multiline"] = True
    element["max_length"] = MAX_INPUT if multiline else MAX_BRANCH
    return _input(block_id, label, element, optional=optional)


# --- history --------------------------------------------------------------------------------------


def history_message(
    page: Page, config: Config, locale: str, *, environment: str | None, status: str | None
) -> Message:
    """One page of history: filters, one row per deploy (查看日志; 回滚到此版本 on successes), pager."""
    env = config.environment(environment) if environment else None
    env_name = env.name if env else None
    status = status if status in {s.value for s in Status} else None
    summary = t(locale, "ui.history.summary", total=page.total, page=page.page, pages=page.pages)
    blocks = [
        _header(t(locale, "ui.history.title"), "history_title"),
        _history_filters(config, locale, env_name, status),
        _context(summary, "history_summary"),
    ]
    room = (MAX_BLOCKS - len(blocks) - 2) // 2  # two blocks a row; keep room for the pager and a note
    for deploy in page.items[:room]:
        blocks += _history_row(deploy, config, locale)
    if len(page.items) > room:
        blocks.append(_context(t(locale, "ui.history.more", count=len(page.items) - room), "history_more"))
    if not page.items:
        blocks.append(_section(t(locale, "ui.history.empty"), "history_empty"))
    if pager := _pager(page, env_name, status, locale):
        blocks.append(pager)
    text = t(locale, "ui.history.text", total=page.total, page=page.page, pages=page.pages)
    return Message(text, blocks)


def _history_filters(config: Config, locale: str, env_name: str | None, status: str | None) -> dict:
    all_envs = _option(t(locale, "ui.history.all_envs"), "all")
    envs = [all_envs] + [_option(e.display, e.name) for e in config.environments.values()][: MAX_OPTIONS - 1]
    all_statuses = _option(t(locale, "ui.history.all_statuses"), "all")
    statuses = [all_statuses] + [_option(t(locale, f"status.{s.value}"), s.value) for s in Status]
    return {
        "type": "actions",
        "block_id": "history_filters",
        "elements": [
            _select("history_env", envs, env_name, t(locale, "ui.history.env_placeholder")),
            _select("history_status", statuses, status, t(locale, "ui.history.status_placeholder")),
        ],
    }


def _select(action_id: str, options: list[dict], chosen: str | None, placeholder: str) -> dict:
    initial = next((o for o in options if o["value"] == (chosen or "all")), options[0])
    return {
        "type": "static_select",
        "action_id": action_id,
        "placeholder": _plain(placeholder),
        "initial_option": initial,
        "options": options,
    }


def _history_row(deploy: Deploy, config: Config, locale: str) -> list[dict]:
    env = config.environments.get(deploy.environment)
    buttons = [_button(t(locale, "ui.button.view_logs"), "view_logs", deploy.id)]
    if deploy.state is Status.SUCCESS:
        buttons.append(_button(t(locale, "ui.button.rollback_to"), "rollback_to", deploy.id))
    return [
        _section(_row_text(deploy, env, locale), f"history_{deploy.id}"),
        {"type": "actions", "block_id": f"history_{deploy.id}_actions", "elements": buttons},
    ]


def _row_text(deploy: Deploy, env: Environment | None, locale: str) -> str:
    """Two lines: what was deployed where and how it went; who, when, how long."""
    first = [
        f"*#{deploy.id}*",
        f"{EMOJI[deploy.state]} {t(locale, f'status.{deploy.state.value}')}",
        _escape(_env_label(env, deploy.environment)),
        _code(_clip(deploy.branch, 100)),
    ]
    if deploy.commit_hash:
        first.append(_commit(deploy, env, locale))
    if deploy.rollback_of:
        first.append(t(locale, "ui.card.rollback_of", deploy_id=deploy.rollback_of))
    took = _duration(_took(deploy), locale) if deploy.state.is_finished else t(locale, "ui.history.running")
    second = [_deployer(deploy.deployed_by), _stamp(deploy.started_at or deploy.created_at), took]
    text = " · ".join(first) + "\n" + " · ".join(second)
    if deploy.description:
        text += "\n_" + _escape(_clip(_one_line(deploy.description), 200)) + "_"
    return text


def _pager(page: Page, env_name: str | None, status: str | None, locale: str) -> dict | None:
    def value(number: int) -> str:
        return json.dumps({"env": env_name, "status": status, "page": number})

    buttons = []
    if page.has_prev:
        buttons.append(_button(t(locale, "ui.button.prev"), "history_prev", value(page.page - 1)))
    if page.has_next:
        buttons.append(_button(t(locale, "ui.button.next"), "history_next", value(page.page + 1)))
    return {"type": "actions", "block_id": "history_pager", "elements": buttons} if buttons else None


# --- App Home -------------------------------------------------------------------------------------


def home_view(envs: Sequence[EnvHome], recent: Sequence[Deploy], locale: str, *, now: datetime) -> dict:
    """Each environment's live version and running deploy, a 一键部署 button, recent deploys."""
    blocks = [_header("deploybot", "home_title")]
    shown = envs[: MAX_VIEW_BLOCKS - 8]
    blocks += [_env_section(item, locale, now) for item in shown]
    deploy = _button(t(locale, "ui.button.deploy"), "open_deploy_modal", "open", style="primary")
    blocks.append({"type": "actions", "block_id": "home_actions", "elements": [deploy]})
    blocks += [
        {"type": "divider", "block_id": "home_divider"},
        _header(t(locale, "ui.home.recent"), "home_recent_title"),
    ]
    rows = [_home_row(d, locale) for d in recent] or [t(locale, "ui.home.no_recent")]
    blocks += [_section(text, f"home_recent_{i}") for i, text in enumerate(_pack(rows, 3), 1)]
    blocks.append(_context(t(locale, "ui.home.times"), "home_times"))
    return {"type": "home", "callback_id": "app_home", "blocks": blocks}


def _env_section(item: EnvHome, locale: str, now: datetime) -> dict:
    env, live, running = item.env, item.live, item.running
    lines = [_env_title(env, env.name, bold=True)]
    if live is None:
        lines.append(t(locale, "ui.home.never"))
    else:
        lines.append(
            t(
                locale,
                "ui.home.live",
                deploy_id=live.id,
                commit=_commit(live, env, locale),
                branch=_inline_code_text(_clip(live.branch, 100)),
                time=_stamp(live.completed_at or live.created_at),
                user=_deployer(live.deployed_by),
            )
        )
    if running is not None:
        progress = _progress(running, item.estimate, now, locale)
        lines.append(
            f"{EMOJI[running.state]} "
            + t(
                locale,
                "ui.home.running",
                deploy_id=running.id,
                branch=_inline_code_text(_clip(running.branch, 100)),
                user=_deployer(running.deployed_by),
                progress=progress,
            )
        )
    history = _button(t(locale, "ui.button.history"), "home_open_history", env.name)
    return _section(_clip("\n".join(lines), MAX_SECTION), f"home_env_{env.name}") | {"accessory": history}


def _home_row(deploy: Deploy, locale: str) -> str:
    parts = [
        f"{EMOJI[deploy.state]} *#{deploy.id}*",
        _code(deploy.environment),
        _code(_clip(deploy.branch, 60)),
        deploy.short_commit and f"`{deploy.short_commit}`",
        _deployer(deploy.deployed_by),
        _stamp(deploy.started_at or deploy.created_at),
    ]
    if deploy.state.is_finished:
        parts.append(_duration(_took(deploy), locale))
    return " · ".join(part for part in parts if part)


# --- help and short answers -----------------------------------------------------------------------


def help_message(rows: Sequence[tuple[str, str]], locale: str) -> Message:
    """`/deploy help`: one line per form of the command, and the 一键部署 button."""
    lines = [f"`{_inline_code_text(syntax)}` — {_escape(text)}" for syntax, text in rows]
    title = t(locale, "ui.help.title")
    blocks = [_header(title, "help_title")]
    blocks += [_section(text, f"help_{i}") for i, text in enumerate(_pack(lines, MAX_BLOCKS - 2), 1)]
    deploy = _button(t(locale, "ui.button.deploy"), "open_deploy_modal", "open", style="primary")
    blocks.append({"type": "actions", "block_id": "help_actions", "elements": [deploy]})
    fallback = title + "\n" + "\n".join(_escape(f"{syntax} — {text}") for syntax, text in rows)
    return Message(_clip(fallback, MAX_TEXT), blocks)


def notice(text: str) -> Message:
    """A one-line (ephemeral) answer. The text comes from the catalogue but may quote what a
    user typed, so only the links the bot writes itself stay links."""
    safe = _escape_prose(text) or "—"
    return Message(_clip(safe, MAX_TEXT), [_section(_clip(safe, MAX_SECTION), "notice")])


def usage_error(message: str, usage: str, locale: str) -> Message:
    """What was wrong, and the syntax that works. The usage is preformatted rich text: shown
    literally, so `<id>` needs no escaping and reads as written."""
    safe = _escape_prose(message) or "—"
    blocks = [_section(_clip(f":warning: {safe}", MAX_SECTION), "usage_error")]
    if usage.strip():
        blocks.append(_context(t(locale, "ui.usage.label"), "usage_label"))
        preformatted = {
            "type": "rich_text_preformatted",
            "elements": [{"type": "text", "text": _clip(usage, MAX_SECTION)}],
        }
        blocks.append({"type": "rich_text", "block_id": "usage", "elements": [preformatted]})
    fallback = f"{safe}\n{t(locale, 'ui.usage.label')}: {_escape(usage)}" if usage.strip() else safe
    return Message(_clip(fallback, MAX_TEXT), blocks)


# --- logs in code blocks --------------------------------------------------------------------------


def _log_sections(
    lines: Sequence[str], max_sections: int, locale: str, *, note: bool = True
) -> tuple[list[str], int]:
    """The newest `lines` as up to `max_sections` code blocks that each fit a section, and how
    many older lines did not fit. With `note`, the first block says how many were left out."""
    budget = MAX_SECTION - FENCE_COST - (120 if note else 0)
    chunks: list[list[str]] = [[]]
    size = 0
    for raw in reversed(lines):
        line = _code_line(raw)
        if size + len(line) + 1 > budget and chunks[-1]:
            if len(chunks) == max_sections:
                break
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += len(line) + 1
    kept = sum(len(chunk) for chunk in chunks)
    omitted = len(lines) - kept
    if not any(line.strip() for chunk in chunks for line in chunk):
        return [], omitted
    texts = [CODE_FENCE.format("\n".join(reversed(chunk))) for chunk in reversed(chunks)]
    if note and omitted:
        texts[0] = f"_{t(locale, 'ui.log.omitted', count=omitted)}_\n{texts[0]}"
    return texts, omitted


def _code_line(raw: str, limit: int = MAX_LOG_LINE) -> str:
    """One line of output made safe inside a code block: no terminal colours or control
    characters, no ``` that would close the block, mrkdwn-escaped, at most `limit` characters
    before escaping."""
    line = CONTROL.sub("", ANSI.sub("", _clip(raw, limit * 2))).replace("\t", "    ")
    return _escape(_clip(line, limit).replace("```", "ˋˋˋ"))


# --- small pieces ---------------------------------------------------------------------------------


def _escape(text: str) -> str:
    """Slack mrkdwn escaping: the only three characters Slack requires escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_prose(text: str) -> str:
    pieces, last = [], 0
    for match in SAFE_MARKUP.finditer(text):
        pieces += [_escape(text[last : match.start()]), match.group()]
        last = match.end()
    return "".join(pieces) + _escape(text[last:])


def _inline_code_text(text: str) -> str:
    """Text for inside `…`: escaped, and without backticks (they would end the span)."""
    return _escape(_one_line(text).replace("`", "ˋ"))


def _code(text: str) -> str:
    return f"`{_inline_code_text(text)}`" if text else "—"


def _one_line(text: str) -> str:
    return " ".join(CONTROL.sub(" ", text).split())


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pack(lines: Sequence[str], max_sections: int) -> list[str]:
    """Lines joined into as few section texts as fit, at most `max_sections` (later lines go)."""
    texts: list[str] = []
    for line in lines:
        line = _clip(line, MAX_SECTION)
        if texts and len(texts[-1]) + 1 + len(line) <= MAX_SECTION:
            texts[-1] += "\n" + line
        elif len(texts) < max_sections:
            texts.append(line)
    return texts


def _deployer(who: str | None) -> str:
    """`<@U0ADMIN01>` for a Slack user id, the name itself (`api:ci`) otherwise."""
    if not who:
        return "—"
    return f"<@{who}>" if USER_ID.match(who) else _escape(_clip(who, 100))


def _env_label(env: Environment | None, name: str) -> str:
    return env.display if env else name


def _env_title(env: Environment | None, name: str, *, bold: bool = False) -> str:
    """`生产环境 (`production`)` (bold: `*生产环境* `production``), or just `production` when
    it has no label."""
    label = _escape(env.label) if env and env.label else ""
    if bold and label:
        return f"*{label}* {_code(name)}"
    return f"{label} ({_code(name)})" if label else _code(name)


def _commit(deploy: Deploy, env: Environment | None, locale: str) -> str:
    """`abc1234`, linked when the environment has a commit_url."""
    if not deploy.commit_hash:
        # no repo to resolve from: the script may still report it (DEPLOY_COMMIT=…)
        return t(locale, "ui.commit.pending") if deploy.state.is_active else "—"
    short = _escape(deploy.short_commit)
    if env and env.commit_url:
        url = re.sub(
            r"[\s<>|]",
            lambda m: f"%{ord(m.group()):02X}",
            env.commit_url.replace("{commit}", deploy.commit_hash),
        )
        return f"<{url}|{short}>"
    return f"`{short}`"


def _elapsed(deploy: Deploy, now: datetime) -> float:
    start = deploy.started_at or deploy.created_at
    return max(0.0, (now - start).total_seconds()) if start else 0.0


def _took(deploy: Deploy) -> float | None:
    if deploy.duration is not None:
        return float(deploy.duration)
    if deploy.started_at and deploy.completed_at:
        return max(0.0, (deploy.completed_at - deploy.started_at).total_seconds())
    return None


def _duration(seconds: float | None, locale: str) -> str:
    """2分41秒 / 2m 41s."""
    if seconds is None:
        return "—"
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return t(locale, "ui.duration.hours", h=hours, m=minutes)
    if minutes:
        return t(locale, "ui.duration.minutes", m=minutes, s=secs)
    return t(locale, "ui.duration.seconds", s=secs)


def _stamp(moment: datetime | None) -> str:
    """`11-28 09:04`, in UTC."""
    return moment.astimezone(UTC).strftime("%m-%d %H:%M") if moment else "—"


def _plain(text: str) -> dict:
    return {"type": "plain_text", "text": text, "emoji": True}


def _mrkdwn(text: str) -> dict:
    return {"type": "mrkdwn", "text": text}


def _section(text: str, block_id: str) -> dict:
    return {"type": "section", "block_id": block_id, "text": _mrkdwn(_clip(text, MAX_SECTION))}


def _context(text: str, block_id: str) -> dict:
    return {"type": "context", "block_id": block_id, "elements": [_mrkdwn(_clip(text, MAX_SECTION))]}


def _header(text: str, block_id: str) -> dict:
    return {"type": "header", "block_id": block_id, "text": _plain(_clip(text, 150))}


def _option(label: str, value: str) -> dict:
    return {"text": _plain(_clip(label, MAX_OPTION)), "value": value}


def _button(
    text: str, action_id: str, value: object, *, style: str | None = None, confirm: dict | None = None
) -> dict:
    button = {
        "type": "button",
        "action_id": action_id,
        "text": _plain(_clip(text, MAX_BUTTON)),
        "value": str(value),
    }
    if style:
        button["style"] = style
    if confirm:
        button["confirm"] = confirm
    return button


def _confirm(locale: str, kind: str, text: str) -> dict:
    return {
        "title": _plain(_clip(t(locale, f"ui.confirm.{kind}.title"), 100)),
        "text": _mrkdwn(_clip(text, 300)),
        "confirm": _plain(_clip(t(locale, f"ui.confirm.{kind}.confirm"), 30)),
        "deny": _plain(_clip(t(locale, f"ui.confirm.{kind}.deny"), 30)),
        "style": "danger",
    }
