"""Environment locks in Slack: the answers to `/deploy lock`, `/deploy unlock` and `/deploy locks`,
the line a locked environment shows in App Home and on its cards, and the messages the lock
notices send (the reminder DM with 延长 1 小时 / 解锁, the expiry in the channel, the DM to a holder
whose lock a manager ended). Pure: rows and the config in, dicts out."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bot.config import Config, Environment
from bot.i18n import t
from bot.slack.blocks.elements import MAX_BLOCKS, MAX_TEXT, button, context, header, section
from bot.slack.blocks.messages import Message
from bot.slack.blocks.mrkdwn import clip, deployer, duration, env_title, escape, one_line
from storage.models import EnvironmentLock

MAX_REASON_SHOWN = 300


def lock_line(lock: EnvironmentLock, locale: str) -> str:
    """`:lock: 由 <@U…> 锁定，直到 11-28 09:04 UTC（原因）`."""
    params = {"holder": deployer(lock.holder), "until": until(lock)}
    if lock.reason:
        return t(locale, "ui.locks.line", reason=_reason(lock), **params)
    return t(locale, "ui.locks.line_no_reason", **params)


def until(lock: EnvironmentLock) -> str:
    return lock.expires_at.strftime("%m-%d %H:%M")


def left(lock: EnvironmentLock, now: datetime, locale: str) -> str:
    """Time left, rounded up to the minute (a lock that ends in 59 s still has `1分`)."""
    seconds = max(0.0, (lock.expires_at - now).total_seconds())
    return duration(-(-seconds // 60) * 60, locale)


def locks_message(locks: Sequence[EnvironmentLock], config: Config, locale: str, *, now: datetime) -> Message:
    """`/deploy locks`: one section per locked environment."""
    title = t(locale, "ui.locks.title")
    blocks = [header(title, "locks_title")]
    lines = []
    for lock in locks[: MAX_BLOCKS - 3]:
        env = config.environments.get(lock.environment)
        where = env_title(env, lock.environment, bold=True)
        text = (
            f"{where}\n{lock_line(lock, locale)} · {t(locale, 'ui.locks.left', left=left(lock, now, locale))}"
        )
        blocks.append(section(text, f"lock_{lock.environment}"))
        lines.append(f"{_plain_env(env, lock.environment)}: {lock.holder} → {until(lock)} UTC")
    if not locks:
        blocks.append(section(t(locale, "ui.locks.empty"), "locks_empty"))
    blocks.append(context(t(locale, "ui.locks.summary"), "locks_summary"))
    text = "\n".join([t(locale, "ui.locks.text", count=len(locks)), *lines])
    return Message(clip(text, MAX_TEXT), blocks)


def locked_notice(
    lock: EnvironmentLock, env: Environment, locale: str, *, extended: bool, now: datetime
) -> Message:
    """The answer to `/deploy lock` (and to 延长 1 小时): until when, and how to end it."""
    key = "cmd.lock_extended" if extended else "cmd.locked"
    params = {"env": env_title(env, env.name), "until": until(lock), "left": left(lock, now, locale)}
    text = t(locale, key, name=env.name, **params)
    blocks = [section(text, "lock_taken")]
    if lock.reason:
        blocks.append(context(_reason(lock), "lock_reason"))
    return Message(_fallback(text), blocks)


def unlocked_notice(lock: EnvironmentLock, env: Environment, locale: str, *, by: str) -> Message:
    """The answer to `/deploy unlock` (and to 解锁): whose lock it was when not the user's own."""
    where = env_title(env, env.name)
    if lock.holder == by:
        text = t(locale, "cmd.unlocked", env=where)
    else:
        text = t(locale, "cmd.unlocked_other", env=where, holder=deployer(lock.holder))
    return Message(_fallback(text), [section(text, "lock_released")])


def reminder_message(
    lock: EnvironmentLock, env: Environment | None, locale: str, *, now: datetime
) -> Message:
    """The DM to the holder shortly before their lock ends, with 延长 1 小时 and 解锁."""
    text = t(
        locale,
        "ui.locks.reminder",
        env=env_title(env, lock.environment),
        until=until(lock),
        left=left(lock, now, locale),
    )
    buttons = [
        button(t(locale, "ui.button.lock_extend"), "lock_extend", lock.environment, style="primary"),
        button(t(locale, "ui.button.unlock"), "lock_release", lock.environment),
    ]
    blocks = [section(text, "lock_reminder")]
    if lock.reason:
        blocks.append(context(_reason(lock), "lock_reason"))
    blocks.append({"type": "actions", "block_id": "lock_reminder_actions", "elements": buttons})
    return Message(_fallback(text), blocks)


def expired_message(lock: EnvironmentLock, env: Environment | None, locale: str) -> Message:
    """In the channel when a lock ran out."""
    text = t(locale, "ui.locks.expired", holder=deployer(lock.holder), env=env_title(env, lock.environment))
    blocks = [section(text, "lock_expired")]
    if lock.reason:
        blocks.append(context(_reason(lock), "lock_reason"))
    return Message(_fallback(text), blocks)


def released_by_message(lock: EnvironmentLock, env: Environment | None, locale: str, *, by: str) -> Message:
    """The DM to a holder whose lock a manager ended."""
    text = t(
        locale,
        "ui.locks.released_by",
        by=deployer(by),
        env=env_title(env, lock.environment),
        until=until(lock),
    )
    return Message(_fallback(text), [section(text, "lock_released_by")])


def _reason(lock: EnvironmentLock) -> str:
    return escape(clip(one_line(lock.reason), MAX_REASON_SHOWN))


def _plain_env(env: Environment | None, name: str) -> str:
    return escape(f"{env.label} ({name})" if env and env.label else name)


def _fallback(text: str) -> str:
    """The mrkdwn text as a notification shows it (no backticks)."""
    return clip(text.replace("`", ""), MAX_TEXT)
