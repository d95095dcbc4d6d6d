"""Text in blocks: the catalogue keys the builders use, names and durations
(bot/slack/blocks/mrkdwn.py), and the short answers (bot/slack/blocks/messages.py): help, notices,
usage errors."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from bot import i18n
from bot.i18n import t
from bot.slack import blocks
from bot.slack.blocks.messages import help_message, notice, usage_error
from bot.slack.blocks.mrkdwn import deployer, duration, escape
from bot.slack.grammar import FULL_USAGE, help_rows
from tests.slack.blocks_fixtures import block, buttons, check, text_of

# --- catalogue ------------------------------------------------------------------------------------


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_catalogues_have_the_same_keys_and_placeholders() -> None:
    assert set(i18n.ZH) == set(i18n.EN)
    for key in i18n.ZH:
        assert _placeholders(i18n.ZH[key]) == _placeholders(i18n.EN[key]), key


def test_every_ui_key_the_renderer_uses_exists() -> None:
    modules = sorted(Path(blocks.__file__).parent.glob("*.py"))
    source = "\n".join(module.read_text(encoding="utf-8") for module in modules)
    used = set(re.findall(r'"(ui\.[a-z_.]+)"', source))
    assert used and used <= set(i18n.ZH)


# --- names and durations --------------------------------------------------------------------------


def test_deployer_display() -> None:
    assert deployer("U0ADMIN01") == "<@U0ADMIN01>"
    assert deployer("W012ABCDE") == "<@W012ABCDE>"
    assert deployer("api:ci") == "api:ci"
    assert deployer("zhang.wei") == "zhang.wei"
    assert deployer("<@U1>") == "&lt;@U1&gt;"


@pytest.mark.parametrize(
    ("seconds", "zh", "en"),
    [
        (0, "0秒", "0s"),
        (41, "41秒", "41s"),
        (161, "2分41秒", "2m 41s"),
        (3725, "1小时2分", "1h 2m"),
        (None, "—", "—"),
    ],
)
def test_durations(seconds, zh, en) -> None:
    assert (duration(seconds, "zh"), duration(seconds, "en")) == (zh, en)


# --- help, notices, usage errors ------------------------------------------------------------------


def test_help_lists_every_form_and_offers_the_deploy_modal() -> None:
    rows = help_rows("zh")
    message = check(help_message(rows, "zh"))
    shown = "\n".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")
    for syntax, description in rows:
        assert f"`{escape(syntax)}` — {description}" in shown
    assert "/deploy logs &lt;id&gt;" in shown and "<id>" not in shown
    assert buttons(message)["open_deploy_modal"]["text"]["text"] == "一键部署"


def test_notice_keeps_the_text_and_only_the_bots_own_links() -> None:
    plain = t("en", "error.deploy_not_found", deploy_id=99)
    assert check(notice(plain)).text == plain
    tricky = notice("deploy by <@U0ADMIN01> of `a<!channel>&b` see <https://x.example/a?b=1&c=2|log>")
    check(tricky)
    assert tricky.text == (
        "deploy by <@U0ADMIN01> of `a&lt;!channel&gt;&amp;b` see <https://x.example/a?b=1&c=2|log>"
    )
    assert check(notice("x" * 50_000)).blocks[0]["text"]["text"].endswith("…")


def test_usage_error_shows_the_usage_literally() -> None:
    message = check(usage_error("未知的子命令或环境 `moon`", FULL_USAGE, "zh"))
    assert text_of(message, "usage_error") == ":warning: 未知的子命令或环境 `moon`"
    preformatted = block(message, "usage")["elements"][0]["elements"][0]["text"]
    assert preformatted == FULL_USAGE and "/deploy logs <id>" in preformatted
    assert "<id>" not in message.text and "&lt;id&gt;" in message.text
    assert [b["block_id"] for b in check(usage_error("bad", "", "en")).blocks] == ["usage_error"]
