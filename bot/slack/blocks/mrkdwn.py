"""Text inside blocks: escaping what users and scripts wrote for Slack's mrkdwn, and the small
pieces every surface writes the same way (deployer, environment, commit link, durations, times,
status emoji).

Only the links the bot writes itself (mentions, channels, URLs) may survive as markup; anything
else that looks like markup is escaped.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bot.config import Environment
from bot.i18n import t
from storage.models import Deploy, Status

EMOJI = {
    Status.SCHEDULED: ":alarm_clock:",
    Status.QUEUED: ":busstop:",
    Status.AWAITING_APPROVAL: ":raised_hand:",
    Status.PENDING: ":hourglass:",
    Status.RUNNING: ":hourglass_flowing_sand:",
    Status.SUCCESS: ":white_check_mark:",
    Status.FAILED: ":x:",
    Status.CANCELLED: ":no_entry_sign:",
}
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Links the bot writes itself (mentions, channels, URLs) and entities already escaped survive
# `escape_prose`; anything else that looks like markup is escaped.
SAFE_MARKUP = re.compile(
    r"<@[UW][A-Z0-9]+>|<#C[A-Z0-9]+(?:\|[^<>]*)?>|<https?://[^\s<>|]+(?:\|[^<>]*)?>|&(?:amp|lt|gt);"
)


# --- escaping -------------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack mrkdwn escaping: the only three characters Slack requires escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_prose(text: str) -> str:
    pieces, last = [], 0
    for match in SAFE_MARKUP.finditer(text):
        pieces += [escape(text[last : match.start()]), match.group()]
        last = match.end()
    return "".join(pieces) + escape(text[last:])


def inline_code_text(text: str) -> str:
    """Text for inside `…`: escaped, and without backticks (they would end the span)."""
    return escape(one_line(text).replace("`", "ˋ"))


def code(text: str) -> str:
    return f"`{inline_code_text(text)}`" if text else "—"


def one_line(text: str) -> str:
    return " ".join(CONTROL.sub(" ", text).split())


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- who, where, which version --------------------------------------------------------------------


def deployer(who: str | None) -> str:
    """`<@U0ADMIN01>` for a Slack user id, the name itself (`api:ci`) otherwise."""
    if not who:
        return "—"
    return f"<@{who}>" if USER_ID.match(who) else escape(clip(who, 100))


def env_label(env: Environment | None, name: str) -> str:
    return env.display if env else name


def env_title(env: Environment | None, name: str, *, bold: bool = False) -> str:
    """`生产环境 (`production`)` (bold: `*生产环境* `production``), or just `production` when
    it has no label."""
    label = escape(env.label) if env and env.label else ""
    if bold and label:
        return f"*{label}* {code(name)}"
    return f"{label} ({code(name)})" if label else code(name)


def commit(deploy: Deploy, env: Environment | None, locale: str) -> str:
    """`abc1234`, linked when the environment has a commit_url."""
    if not deploy.commit_hash:
        # no repo to resolve from: the script may still report it (DEPLOY_COMMIT=…)
        return t(locale, "ui.commit.pending") if deploy.state.is_active else "—"
    short = escape(deploy.short_commit)
    if env and env.commit_url:
        url = re.sub(
            r"[\s<>|]",
            lambda m: f"%{ord(m.group()):02X}",
            env.commit_url.replace("{commit}", deploy.commit_hash),
        )
        return f"<{url}|{short}>"
    return f"`{short}`"


# --- time -----------------------------------------------------------------------------------------


def elapsed_seconds(deploy: Deploy, now: datetime) -> float:
    start = deploy.started_at or deploy.created_at
    return max(0.0, (now - start).total_seconds()) if start else 0.0


def took_seconds(deploy: Deploy) -> float | None:
    if deploy.duration is not None:
        return float(deploy.duration)
    if deploy.started_at and deploy.completed_at:
        return max(0.0, (deploy.completed_at - deploy.started_at).total_seconds())
    return None


def duration(seconds: float | None, locale: str) -> str:
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


def stamp(moment: datetime | None) -> str:
    """`11-28 09:04`, in UTC."""
    return moment.astimezone(UTC).strftime("%m-%d %H:%M") if moment else "—"
