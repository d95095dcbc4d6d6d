"""The live channel card of a deploy (bot/slack/blocks/card.py), asserted on its dicts."""

from __future__ import annotations

import json
import re

import pytest

from bot.i18n import t
from bot.slack.blocks.card import deploy_card, progress_bar
from bot.slack.blocks.thread import final_reply
from tests.conftest import PAYLOADS
from tests.slack.blocks_fixtures import (
    COMMIT_URL,
    GUEST,
    LOCALES,
    SHA_41,
    SHA_42,
    all_texts,
    block,
    block_ids,
    buttons,
    check,
    code_bodies,
    ctx,
    deploy,
    make_config,
    running,
    target,
    text_of,
    without,
)

# --- progress bar ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "total", "width", "filled"),
    [
        (0, 7, 10, 0),
        (1, 7, 10, 2),  # a started step shows, as on the sample card (`██░░░░░░░░` 1/7)
        (3, 7, 10, 5),
        (6, 7, 10, 9),
        (7, 7, 10, 10),
        (9, 7, 10, 10),
        (-1, 7, 10, 0),
        (3, 0, 10, 0),
        (1, 100, 10, 1),
        (50, 100, 20, 10),
    ],
)
def test_progress_bar_arithmetic(current: int, total: int, width: int, filled: int) -> None:
    assert progress_bar(current, total, width) == f"`{'█' * filled}{'░' * (width - filled)}`"


# --- the deploy card ------------------------------------------------------------------------------


def test_pending_card(cfg) -> None:
    row = running(status="pending", step_current=None, step_total=None, commit_hash=None, started_at=None)
    card = check(deploy_card(row, ctx(cfg), "zh"))
    assert block_ids(card) == [f"deploy_43_{part}" for part in ("summary", "fields", "progress", "actions")]
    assert text_of(card, "deploy_43_summary") == ":hourglass: *等待中* #43 · 生产环境 (`production`)"
    assert "*提交*\n待脚本报告" in text_of(card, "deploy_43_fields")
    assert text_of(card, "deploy_43_progress") == "`░░░░░░░░░░` 等待开始"
    assert set(buttons(card)) == {"view_logs", "cancel_deploy"}


@pytest.mark.parametrize("locale", LOCALES)
def test_running_card_with_markers_has_bar_step_elapsed_and_a_confirmed_cancel(cfg, locale) -> None:
    card = check(deploy_card(running(), ctx(cfg, seconds=75), locale))
    elapsed = "1分15秒" if locale == "zh" else "1m 15s"
    progress = text_of(card, "deploy_43_progress")
    assert progress == f"`███░░░░░░░` 2/7 打包 · {t(locale, 'ui.progress.elapsed', elapsed=elapsed)}"
    assert f"*{t(locale, 'ui.field.elapsed')}*\n{elapsed}" in text_of(card, "deploy_43_fields")
    cancel = buttons(card)["cancel_deploy"]
    assert (cancel["value"], cancel["style"], cancel["text"]["text"]) == (
        "43",
        "danger",
        t(locale, "ui.button.cancel"),
    )
    confirm = cancel["confirm"]
    assert confirm["title"]["text"] == t(locale, "ui.confirm.cancel.title")
    assert confirm["confirm"]["text"] == t(locale, "ui.confirm.cancel.confirm")
    assert confirm["deny"]["text"] == t(locale, "ui.confirm.cancel.deny")
    assert "#43" in confirm["text"]["text"] and "生产环境" in confirm["text"]["text"]
    assert buttons(card)["view_logs"]["value"] == "43" and "rollback" not in buttons(card)


def test_running_card_with_only_an_estimate_says_it_is_one(cfg) -> None:
    row = running(step_current=None, step_total=None, step_title=None)
    card = check(deploy_card(row, ctx(cfg, seconds=75, estimate=300), "zh"))
    assert text_of(card, "deploy_43_progress") == "`███░░░░░░░` 预计 25% · 已用时 1分15秒，通常约 5分0秒"

    late = check(deploy_card(row, ctx(cfg, seconds=400, estimate=300), "zh"))
    assert text_of(late, "deploy_43_progress") == "`██████████` 已用时 6分40秒，超过了通常的 5分0秒"

    unknown = check(deploy_card(row, ctx(cfg, seconds=75), "zh"))
    assert text_of(unknown, "deploy_43_progress") == "已用时 1分15秒"


def test_running_card_with_markers_ignores_the_estimate(cfg) -> None:
    card = deploy_card(running(), ctx(cfg, estimate=300), "zh")
    assert "预计" not in text_of(card, "deploy_43_progress")


def test_success_card_looks_like_the_sample_and_offers_rollback_to_the_previous_version(cfg) -> None:
    card = check(deploy_card(deploy(), ctx(cfg, rollback=target()), "zh"))
    sample = json.loads((PAYLOADS / "block_actions.button.json").read_text())["message"]
    assert card.text == sample["text"]
    assert block(card, "deploy_42_summary")["text"]["text"] == sample["blocks"][0]["text"]["text"]
    assert [f["text"] for f in block(card, "deploy_42_fields")["fields"]] == [
        f["text"] for f in sample["blocks"][1]["fields"]
    ]
    assert text_of(card, "deploy_42_progress") == "`██████████` 7/7 健康检查 · 完成于 11-28 09:02 UTC"
    rollback = buttons(card)["rollback"]
    assert (rollback["value"], rollback["style"], rollback["text"]["text"]) == ("42", "danger", "回滚到 #41")
    sample_confirm = sample["blocks"][3]["elements"][1]["confirm"]
    assert without(rollback["confirm"], {"verbatim"}) == without(sample_confirm, {"verbatim"})
    assert "a1b2c3d" in rollback["confirm"]["text"]["text"]
    assert set(buttons(card)) == {"view_logs", "rollback"}


def test_success_card_without_an_earlier_version_has_no_rollback(cfg) -> None:
    card = check(deploy_card(deploy(), ctx(cfg), "zh"))
    assert set(buttons(card)) == {"view_logs"}


def test_failed_card_shows_the_step_and_the_error(cfg) -> None:
    error = "脚本退出码 3: ERROR: migration <0042> & ```boom```"
    row = deploy(id=44, status="failed", step_current=5, step_title="数据库迁移", error_message=error)
    card = check(deploy_card(row, ctx(cfg), "zh"))
    assert text_of(card, "deploy_44_progress") == "`████████░░` 5/7 数据库迁移 · 失败于 11-28 09:02 UTC"
    shown = text_of(card, "deploy_44_error")
    assert code_bodies(shown) == ["脚本退出码 3: ERROR: migration &lt;0042&gt; &amp; ˋˋˋboomˋˋˋ"]
    assert block_ids(card)[-1] == "deploy_44_actions" and set(buttons(card)) == {"view_logs"}


def test_cancelled_card_says_who_cancelled(cfg) -> None:
    row = deploy(
        id=45, status="cancelled", cancelled_by=GUEST, step_current=3, error_message="已被 U0GUEST01 取消"
    )
    card = check(deploy_card(row, ctx(cfg), "en"))
    assert text_of(card, "deploy_45_progress").endswith(f"cancelled by <@{GUEST}> · 11-28 09:02 UTC")
    assert ":no_entry_sign: *Cancelled* #45" in text_of(card, "deploy_45_summary")
    assert "deploy_45_error" not in block_ids(card) and set(buttons(card)) == {"view_logs"}


def test_rollback_card_says_which_version_it_restores(cfg) -> None:
    card = check(deploy_card(running(rollback_of=41, commit_hash=SHA_41), ctx(cfg), "zh"))
    assert "回滚到 #41" in text_of(card, "deploy_43_summary")
    assert "`a1b2c3d`" in text_of(card, "deploy_43_fields")


def test_card_links_the_commit_escapes_user_text_and_names_api_callers() -> None:
    cfg = make_config(commit_url=COMMIT_URL)
    row = running(
        branch="feat/<b>&`x`",
        description="see <!channel> & *ship* it",
        deployed_by="api:ci",
        skip_build=True,
    )
    card = check(deploy_card(row, ctx(cfg), "zh"))
    fields = text_of(card, "deploy_43_fields")
    assert f"<https://git.example.com/app/commit/{SHA_42}|3f9c2ab>" in fields
    assert "`feat/&lt;b&gt;&amp;ˋxˋ`" in fields
    assert "see &lt;!channel&gt; &amp; *ship* it" in fields
    assert "*部署人*\napi:ci" in fields and "跳过构建步骤" in fields
    assert "<!channel>" not in all_texts(card.blocks) and "<b>" not in card.text


def test_long_escaped_texts_are_cut_before_escaping_so_no_entity_or_fence_is_broken(cfg) -> None:
    row = deploy(
        id=44, status="failed", description="&" * 2000, branch="<" * 255, error_message="<" * 100_000
    )
    card = check(deploy_card(row, ctx(cfg), "zh"))
    error = text_of(card, "deploy_44_error")
    assert error.endswith("\n```") and len(code_bodies(error)) == 1
    description = block(card, "deploy_44_fields")["fields"][-1]["text"]
    assert description.endswith("&amp;…") and "…" not in text_of(card, "deploy_44_fields").replace(
        description, ""
    )
    for message in (card, final_reply(row, ctx(cfg), (), "zh")):
        for piece in re.findall(r"&[a-z]*;?", all_texts(message.blocks)):
            assert piece in ("&amp;", "&lt;", "&gt;"), piece
