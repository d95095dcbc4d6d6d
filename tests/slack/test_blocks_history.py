"""The history message (bot/slack/blocks/history.py): filters, rows, per-row buttons, pager."""

from __future__ import annotations

import json

from bot.i18n import t
from bot.slack.blocks.history import history_message
from storage.repository import Page
from tests.blockkit import validate_view
from tests.slack.blocks_fixtures import (
    block,
    block_ids,
    buttons,
    check,
    history_page,
    text_of,
)


def test_history_rows_filters_and_per_row_buttons(cfg) -> None:
    message = check(history_message(history_page(1), cfg, "zh", environment="prod", status="success"))
    assert len(message.blocks) <= 50
    env_select, status_select = block(message, "history_filters")["elements"]
    assert (env_select["action_id"], env_select["initial_option"]["value"]) == ("history_env", "production")
    assert (status_select["action_id"], status_select["initial_option"]["value"]) == (
        "history_status",
        "success",
    )
    assert [o["value"] for o in env_select["options"]] == ["all", "production", "staging", "testing"]
    assert "共 25 条 · 第 1/3 页" in text_of(message, "history_summary")
    for row in history_page(1).items:
        row_buttons = {
            e["action_id"]: e["value"] for e in block(message, f"history_{row.id}_actions")["elements"]
        }
        expected = {"view_logs": str(row.id)} | (
            {"rollback_to": str(row.id)} if row.status == "success" else {}
        )
        assert row_buttons == expected
    first = text_of(message, "history_25")
    assert first.startswith("*#25* · :white_check_mark: 部署成功 · 生产环境 · `b25` · `3f9c2ab`")
    assert "<@U0ADMIN01> · 11-28 09:00 · 2分41秒" in first


def test_the_live_version_is_marked_and_offers_a_redeploy_instead_of_a_rollback(cfg) -> None:
    page = history_page(1)
    live = next(row for row in page.items if row.status == "success")
    older = next(row for row in page.items if row.status == "success" and row.id != live.id)
    message = check(
        history_message(page, cfg, "zh", environment=None, status=None, live={live.environment: live.id})
    )
    assert text_of(message, f"history_{live.id}").startswith("*当前版本* · ")
    labels = {
        e["action_id"]: e["text"]["text"] for e in block(message, f"history_{live.id}_actions")["elements"]
    }
    assert labels["rollback_to"] == t("zh", "ui.button.redeploy")
    older_labels = {
        e["action_id"]: e["text"]["text"] for e in block(message, f"history_{older.id}_actions")["elements"]
    }
    assert older_labels["rollback_to"] == t("zh", "ui.button.rollback_to")
    assert "当前版本" not in text_of(message, f"history_{older.id}")


def test_history_pager_on_first_middle_last_and_only_page(cfg) -> None:
    def pager(page: Page) -> dict[str, dict]:
        message = check(history_message(page, cfg, "en", environment=None, status="failed"))
        return {k: json.loads(v["value"]) for k, v in buttons(message).items() if k.startswith("history_")}

    assert pager(history_page(1)) == {"history_next": {"env": None, "status": "failed", "page": 2}}
    assert pager(history_page(2)) == {
        "history_prev": {"env": None, "status": "failed", "page": 1},
        "history_next": {"env": None, "status": "failed", "page": 3},
    }
    assert pager(history_page(3)) == {"history_prev": {"env": None, "status": "failed", "page": 2}}
    only = history_message(history_page(1, total=4), cfg, "en", environment=None, status=None)
    assert "history_pager" not in block_ids(only)


def test_history_empty_and_oversized_pages_stay_within_fifty_blocks(cfg) -> None:
    empty = check(history_message(Page([], 0, 1, 10), cfg, "zh", environment=None, status=None))
    assert text_of(empty, "history_empty") == t("zh", "ui.history.empty")
    filters = block(empty, "history_filters")["elements"]
    assert [f["initial_option"]["value"] for f in filters] == ["all", "all"]

    big = check(
        history_message(history_page(1, total=100, size=40), cfg, "zh", environment=None, status=None)
    )
    assert len(big.blocks) <= 50 and "history_more" in block_ids(big) and "history_pager" in block_ids(big)


def test_history_fits_in_a_modal_too(cfg) -> None:
    message = history_message(history_page(2), cfg, "zh", environment=None, status=None)
    validate_view(
        {"type": "modal", "title": {"type": "plain_text", "text": "部署历史"}, "blocks": message.blocks}
    )
