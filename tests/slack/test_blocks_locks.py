"""Environment locks as Block Kit (bot/slack/blocks/locks.py and the lock line of cards and App
Home): what each message says, escaping of what users wrote, and Slack's limits. Pure: rows in memory."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from bot.slack.blocks import locks
from bot.slack.blocks.card import deploy_card
from bot.slack.blocks.home import EnvHome, home_view
from storage.models import EnvironmentLock
from tests.blockkit import validate_view
from tests.slack.blocks_fixtures import LOCALES, T0, buttons, check, ctx, deploy, text_of

NOW = T0 + timedelta(minutes=5)


def lock(environment: str = "production", **fields) -> EnvironmentLock:
    row = {
        "environment": environment,
        "holder": "U0ADMIN01",
        "reason": "release 4.2",
        "locked_at": T0,
        "expires_at": T0 + timedelta(hours=2),
        "reminded_at": None,
    }
    row.update(fields)
    return EnvironmentLock(**row)


@pytest.mark.parametrize("locale", LOCALES)
def test_every_lock_message_is_valid_block_kit(cfg, locale) -> None:
    env = cfg.environments["production"]
    rows = [lock(), lock("staging", holder="api:ci", reason="")]
    check(locks.locks_message(rows, cfg, locale, now=NOW))
    check(locks.locks_message([], cfg, locale, now=NOW))
    check(locks.locked_notice(rows[0], env, locale, extended=False, now=NOW))
    check(locks.locked_notice(rows[0], env, locale, extended=True, now=NOW))
    check(locks.unlocked_notice(rows[0], env, locale, by="U0ADMIN01"))
    check(locks.unlocked_notice(rows[0], env, locale, by="U0BOSS003"))
    check(locks.expired_message(rows[1], None, locale))
    check(locks.released_by_message(rows[0], env, locale, by="U0BOSS003"))
    reminder = check(locks.reminder_message(rows[0], env, locale, now=T0 + timedelta(minutes=111)))
    assert set(buttons(reminder)) == {"lock_extend", "lock_release"}
    assert {b["value"] for b in buttons(reminder).values()} == {"production"}


def test_the_list_says_who_until_when_and_why(cfg) -> None:
    message = locks.locks_message([lock(), lock("staging", holder="api:ci", reason="")], cfg, "zh", now=NOW)
    production = text_of(message, "lock_production")
    assert production.startswith("*生产环境* `production`")
    assert (
        "<@U0ADMIN01> 锁定，直到 11-28 11:00 UTC（release 4.2）" in production
        and "还有 1小时55分" in production
    )
    assert "api:ci 锁定，直到 11-28 11:00 UTC" in text_of(message, "lock_staging")
    assert "U0ADMIN01" in message.text and "`" not in message.text


def test_reasons_are_text_never_markup(cfg) -> None:
    shown = locks.lock_line(lock(reason="<!channel> <@U0EVIL> *bold*\nnext"), "en")
    assert "&lt;!channel&gt; &lt;@U0EVIL&gt;" in shown and "\n" not in shown


def test_many_locks_and_long_reasons_stay_within_limits(cfg) -> None:
    rows = [lock(f"env{i}", reason="原因" * 2000) for i in range(80)]
    message = check(locks.locks_message(rows, cfg, "zh", now=NOW))
    assert len(message.blocks) <= 50


def test_cards_and_home_show_the_lock(cfg) -> None:
    card = check(deploy_card(deploy(), replace(ctx(cfg), lock=lock()), "en"))
    assert "locked by <@U0ADMIN01> until 11-28 11:00 UTC (release 4.2)" in text_of(card, "deploy_42_lock")
    assert "deploy_42_lock" not in {
        b["block_id"] for b in check(deploy_card(deploy(), ctx(cfg), "en")).blocks
    }

    envs = [
        EnvHome(env, None, None, lock=lock() if env.name == "production" else None)
        for env in cfg.environments.values()
    ]
    view = home_view(envs, [], "zh", now=NOW)
    validate_view(view)
    assert "<@U0ADMIN01> 锁定" in text_of(view, "home_env_production")
    assert "锁定" not in text_of(view, "home_env_staging")
