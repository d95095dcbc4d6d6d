"""The history message (also shown in a modal): environment and status filters, one row per
deploy with 查看日志 (and 回滚到此版本 on successes), and the pager (上一页/下一页)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from bot.config import Config, Environment
from bot.deploy.freeze import shown
from bot.i18n import t
from bot.slack.blocks.elements import (
    MAX_BLOCKS,
    MAX_OPTIONS,
    button,
    context,
    header,
    option,
    plain_text,
    section,
)
from bot.slack.blocks.messages import Message
from bot.slack.blocks.mrkdwn import (
    EMOJI,
    clip,
    code,
    commit,
    deployer,
    duration,
    env_label,
    escape,
    one_line,
    stamp,
    took_seconds,
)
from storage.models import Deploy, Status
from storage.repository import Page


def history_message(
    page: Page,
    config: Config,
    locale: str,
    *,
    environment: str | None,
    status: str | None,
    live: Mapping[str, int] | None = None,
) -> Message:
    """One page of history: filters, one row per deploy, pager. Every row has 查看日志; a success
    has 回滚到此版本, except the version live now (`live`: environment -> deploy id), which is
    marked 当前版本 and offers 重新部署."""
    live = live or {}
    env = config.environment(environment) if environment else None
    env_name = env.name if env else None
    status = status if status in {s.value for s in Status} else None
    summary = t(locale, "ui.history.summary", total=page.total, page=page.page, pages=page.pages)
    blocks = [
        header(t(locale, "ui.history.title"), "history_title"),
        _history_filters(config, locale, env_name, status),
        context(summary, "history_summary"),
    ]
    room = (MAX_BLOCKS - len(blocks) - 2) // 2  # two blocks a row; keep room for the pager and a note
    for deploy in page.items[:room]:
        blocks += _history_row(deploy, config, locale, is_live=live.get(deploy.environment) == deploy.id)
    if len(page.items) > room:
        blocks.append(context(t(locale, "ui.history.more", count=len(page.items) - room), "history_more"))
    if not page.items:
        blocks.append(section(t(locale, "ui.history.empty"), "history_empty"))
    if pager := _pager(page, env_name, status, locale):
        blocks.append(pager)
    text = t(locale, "ui.history.text", total=page.total, page=page.page, pages=page.pages)
    return Message(text, blocks)


def _history_filters(config: Config, locale: str, env_name: str | None, status: str | None) -> dict:
    all_envs = option(t(locale, "ui.history.all_envs"), "all")
    envs = [all_envs] + [option(e.display, e.name) for e in config.environments.values()][: MAX_OPTIONS - 1]
    all_statuses = option(t(locale, "ui.history.all_statuses"), "all")
    statuses = [all_statuses] + [option(t(locale, f"status.{s.value}"), s.value) for s in Status]
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
        "placeholder": plain_text(placeholder),
        "initial_option": initial,
        "options": options,
    }


def _history_row(deploy: Deploy, config: Config, locale: str, *, is_live: bool) -> list[dict]:
    env = config.environments.get(deploy.environment)
    buttons = [button(t(locale, "ui.button.view_logs"), "view_logs", deploy.id)]
    if deploy.state is Status.SUCCESS:
        label = "ui.button.redeploy" if is_live else "ui.button.rollback_to"
        buttons.append(button(t(locale, label), "rollback_to", deploy.id))
    text = _row_text(deploy, env, locale, config.bot.timezone)
    if is_live:
        text = f"*{t(locale, 'ui.history.live')}* · " + text
    return [
        section(text, f"history_{deploy.id}"),
        {"type": "actions", "block_id": f"history_{deploy.id}_actions", "elements": buttons},
    ]


def _row_text(deploy: Deploy, env: Environment | None, locale: str, zone: str = "UTC") -> str:
    """Two lines: what was deployed where and how it went; who, when, how long."""
    first = [
        f"*#{deploy.id}*",
        f"{EMOJI[deploy.state]} {t(locale, f'status.{deploy.state.value}')}",
        escape(env_label(env, deploy.environment)),
        code(clip(deploy.branch, 100)),
    ]
    if deploy.commit_hash:
        first.append(commit(deploy, env, locale))
    if deploy.rollback_of:
        first.append(t(locale, "ui.card.rollback_of", deploy_id=deploy.rollback_of))
    took = (
        duration(took_seconds(deploy), locale)
        if deploy.state.is_finished
        else t(locale, "ui.history.running")
    )
    second = [deployer(deploy.deployed_by), stamp(deploy.started_at or deploy.created_at), took]
    if deploy.state is Status.SCHEDULED and deploy.scheduled_at is not None:
        second[1] = ":alarm_clock: " + shown(deploy.scheduled_at, zone)
    text = " · ".join(first) + "\n" + " · ".join(second)
    if deploy.description:
        text += "\n_" + escape(clip(one_line(deploy.description), 200)) + "_"
    return text


def _pager(page: Page, env_name: str | None, status: str | None, locale: str) -> dict | None:
    def value(number: int) -> str:
        return json.dumps({"env": env_name, "status": status, "page": number})

    buttons = []
    if page.has_prev:
        buttons.append(button(t(locale, "ui.button.prev"), "history_prev", value(page.page - 1)))
    if page.has_next:
        buttons.append(button(t(locale, "ui.button.next"), "history_next", value(page.page + 1)))
    return {"type": "actions", "block_id": "history_pager", "elements": buttons} if buttons else None
