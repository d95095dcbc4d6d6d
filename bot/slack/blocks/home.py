"""App Home: each environment's live version and running deploy (with its progress line and a
history button), the 一键部署 button, and the recent deploys."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.config import Environment
from bot.i18n import t
from bot.slack.blocks.card import progress_text
from bot.slack.blocks.elements import (
    MAX_SECTION,
    MAX_VIEW_BLOCKS,
    button,
    context,
    header,
    pack_lines,
    section,
)
from bot.slack.blocks.locks import lock_line
from bot.slack.blocks.mrkdwn import (
    EMOJI,
    clip,
    code,
    commit,
    deployer,
    duration,
    env_title,
    inline_code_text,
    stamp,
    took_seconds,
)
from storage.models import Deploy, EnvironmentLock


@dataclass(frozen=True)
class EnvHome:
    env: Environment
    live: Deploy | None
    running: Deploy | None
    estimate: float | None = None
    lock: EnvironmentLock | None = None


def home_view(envs: Sequence[EnvHome], recent: Sequence[Deploy], locale: str, *, now: datetime) -> dict:
    """Each environment's live version and running deploy, a 一键部署 button, recent deploys."""
    blocks = [header("deploybot", "home_title")]
    shown = envs[: MAX_VIEW_BLOCKS - 8]
    blocks += [_env_section(item, locale, now) for item in shown]
    deploy = button(t(locale, "ui.button.deploy"), "open_deploy_modal", "open", style="primary")
    blocks.append({"type": "actions", "block_id": "home_actions", "elements": [deploy]})
    blocks += [
        {"type": "divider", "block_id": "home_divider"},
        header(t(locale, "ui.home.recent"), "home_recent_title"),
    ]
    rows = [_home_row(d, locale) for d in recent] or [t(locale, "ui.home.no_recent")]
    blocks += [section(text, f"home_recent_{i}") for i, text in enumerate(pack_lines(rows, 3), 1)]
    blocks.append(context(t(locale, "ui.home.times"), "home_times"))
    return {"type": "home", "callback_id": "app_home", "blocks": blocks}


def _env_section(item: EnvHome, locale: str, now: datetime) -> dict:
    env, live, running = item.env, item.live, item.running
    lines = [env_title(env, env.name, bold=True)]
    if live is None:
        lines.append(t(locale, "ui.home.never"))
    else:
        lines.append(
            t(
                locale,
                "ui.home.live",
                deploy_id=live.id,
                commit=commit(live, env, locale),
                branch=inline_code_text(clip(live.branch, 100)),
                time=stamp(live.completed_at or live.created_at),
                user=deployer(live.deployed_by),
            )
        )
    if running is not None:
        progress = progress_text(running, item.estimate, now, locale)
        lines.append(
            f"{EMOJI[running.state]} "
            + t(
                locale,
                "ui.home.running",
                deploy_id=running.id,
                branch=inline_code_text(clip(running.branch, 100)),
                user=deployer(running.deployed_by),
                progress=progress,
            )
        )
    if item.lock is not None:
        lines.append(lock_line(item.lock, locale))
    history = button(t(locale, "ui.button.history"), "home_open_history", env.name)
    return section(clip("\n".join(lines), MAX_SECTION), f"home_env_{env.name}") | {"accessory": history}


def _home_row(deploy: Deploy, locale: str) -> str:
    parts = [
        f"{EMOJI[deploy.state]} *#{deploy.id}*",
        code(deploy.environment),
        code(clip(deploy.branch, 60)),
        deploy.short_commit and f"`{deploy.short_commit}`",
        deployer(deploy.deployed_by),
        stamp(deploy.started_at or deploy.created_at),
    ]
    if deploy.state.is_finished:
        parts.append(duration(took_seconds(deploy), locale))
    return " · ".join(part for part in parts if part)
