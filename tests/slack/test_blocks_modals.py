"""The modals (bot/slack/blocks/modals.py): 一键部署, rollback, logs."""

from __future__ import annotations

import json
from datetime import timedelta

from bot.i18n import t
from bot.slack.blocks.modals import LOG_MODAL_SECTIONS, deploy_modal, log_modal, rollback_modal
from tests.blockkit import validate_view
from tests.conftest import PAYLOADS
from tests.slack.blocks_fixtures import (
    SHA_41,
    T0,
    block,
    buttons,
    code_bodies,
    deploy,
    running,
    target,
    text_of,
    without,
)

SLACK_ECHOES = {"dispatch_action", "dispatch_action_config"}  # defaults Slack adds to a stored view


def test_deploy_modal_matches_the_submitted_sample(cfg) -> None:
    sample = json.loads((PAYLOADS / "view_submission.json").read_text())["view"]
    view = deploy_modal(cfg, "zh", metadata=json.dumps({"channel_id": "C0DEPLOY1"}))
    validate_view(view)
    blocks = without(view["blocks"], {"max_length"})
    # Two chosen differences: the environment select is sent as soon as it changes, and the branch
    # input's action_id names the environment (so that a change resets it to that default branch).
    assert blocks[0].pop("dispatch_action") is True
    assert blocks[1]["element"]["action_id"] == "branch_input:production"
    blocks[1]["element"]["action_id"] = "branch_input"
    assert blocks == without(sample["blocks"], SLACK_ECHOES)
    for key in ("callback_id", "title", "submit", "close", "private_metadata", "notify_on_close"):
        assert view[key] == sample[key], key


def test_deploy_modal_preselects_the_asked_environment_and_branch(cfg) -> None:
    view = deploy_modal(cfg, "en", metadata="{}", environment="staging")
    validate_view(view)
    assert block(view, "env")["element"]["initial_option"]["value"] == "staging"
    assert block(view, "branch")["element"]["initial_value"] == "develop"  # staging's default branch
    assert block(view, "branch")["element"]["action_id"] == "branch_input:staging"
    view = deploy_modal(cfg, "en", metadata="{}", environment="prod", branch="release/1.2")
    assert block(view, "env")["element"]["initial_option"]["value"] == "production"
    assert block(view, "branch")["element"]["initial_value"] == "release/1.2"
    assert view["title"]["text"] == "Deploy" and block(view, "options")["optional"] is True


def test_rollback_modal_names_the_target(cfg) -> None:
    meta = json.dumps({"target_id": 41, "undo_id": 42, "channel_id": "C0DEPLOY1"})
    view = rollback_modal(target(), cfg.environments["production"], "zh", metadata=meta, undo=deploy())
    validate_view(view)
    assert (view["callback_id"], view["private_metadata"]) == ("rollback_modal", meta)
    shown = text_of(view, "rollback_target")
    for part in ("生产环境", "#41", "`a1b2c3d`", "`main`", "#42", "`3f9c2ab`"):
        assert part in shown
    reason = block(view, "reason")
    assert (reason["optional"], reason["element"]["action_id"]) == (True, "reason_input")


def test_rollback_modal_without_undo_and_with_a_removed_environment(cfg) -> None:
    row = deploy(id=41, environment="legacy", branch="<hotfix>", commit_hash=SHA_41)
    view = rollback_modal(row, None, "en", metadata="{}")
    validate_view(view)
    shown = text_of(view, "rollback_target")
    assert "`legacy`" in shown and "&lt;hotfix&gt;" in shown and "undoes" not in shown


def test_log_modal(cfg) -> None:
    log = "[4/7] 解压发布包\nunpacked <release> & ```done```\n[5/7] 运行数据库迁移\n"
    view = log_modal(running(), cfg.environments["production"], log, "zh", truncated=False)
    validate_view(view)
    assert (view["callback_id"], json.loads(view["private_metadata"])) == ("deploy_logs", {"deploy_id": 43})
    assert view["title"]["text"] == "部署日志 #43"
    assert "2/7 打包" in text_of(view, "log_head")
    assert code_bodies(text_of(view, "log_tail_1")) == [
        "[4/7] 解压发布包\nunpacked &lt;release&gt; &amp; ˋˋˋdoneˋˋˋ\n[5/7] 运行数据库迁移"
    ]
    assert buttons(view)["refresh_logs"]["value"] == "43"
    assert "log_note" not in [b["block_id"] for b in view["blocks"]]


def test_log_modal_keeps_the_end_of_a_huge_log_and_says_so(cfg) -> None:
    log = "".join(f"{i} " + "&" * (i % 700) + "\n" for i in range(10_000)) + "x" * 1_000_000 + "\nLAST LINE"
    view = log_modal(running(), cfg.environments["production"], log, "en", truncated=True)
    validate_view(view)
    sections = [b for b in view["blocks"] if b["block_id"].startswith("log_tail_")]
    assert 1 < len(sections) <= LOG_MODAL_SECTIONS
    assert code_bodies(sections[-1]["text"]["text"])[0].endswith("LAST LINE")
    assert text_of(view, "log_note") == t("en", "ui.log.earlier")


def test_log_modal_empty_and_cleared(cfg) -> None:
    view = log_modal(running(), None, "", "zh", truncated=False)
    validate_view(view)
    assert text_of(view, "log_note") == t("zh", "ui.log.empty")
    cleared = deploy(logs_cleared_at=T0 + timedelta(days=30))
    view = log_modal(cleared, None, "", "zh", truncated=False)
    assert text_of(view, "log_note") == t("zh", "ui.log.cleared", time="12-28 09:00")
