"""Every Block Kit surface (bot/slack/blocks/) in both locales through the validator, and the
validator itself (tests/blockkit.py) against Slack's samples and broken payloads."""

from __future__ import annotations

import copy
import json

import pytest

from bot.deploy.progress import Step
from bot.slack.blocks.card import CardContext, deploy_card
from bot.slack.blocks.history import history_message
from bot.slack.blocks.home import EnvHome, home_view
from bot.slack.blocks.messages import help_message, notice, usage_error
from bot.slack.blocks.modals import deploy_modal, log_modal, rollback_modal
from bot.slack.blocks.thread import final_reply, step_reply
from bot.slack.grammar import FULL_USAGE, help_rows
from tests.blockkit import validate_message, validate_view
from tests.conftest import PAYLOADS
from tests.slack.blocks_fixtures import (
    COMMIT_URL,
    GUEST,
    LOCALES,
    T0,
    check,
    deploy,
    history_page,
    make_config,
    running,
    target,
)

# --- everything, both locales, through the validator ---------------------------------------------


@pytest.mark.parametrize("locale", LOCALES)
def test_every_output_passes_blockkit_in_both_locales(locale) -> None:
    cfg = make_config(locale=locale, commit_url=COMMIT_URL)
    env = cfg.environments["production"]
    rows = [
        running(status="pending", commit_hash=None, step_current=None),
        running(),
        running(step_current=None, step_total=None),
        deploy(),
        deploy(id=44, status="failed", error_message="boom"),
        deploy(id=45, status="cancelled", cancelled_by=GUEST),
        running(rollback_of=41, description="回滚到 #41 (a1b2c3d)"),
    ]
    for row in rows:
        context = CardContext(env=env, now=T0, estimate=120, rollback_target=target())
        check(deploy_card(row, context, locale))
        check(final_reply(row, context, ("a", "b"), locale))
        check(step_reply(row, Step(3, 7, "上传", ("x",)), locale))
        validate_view(log_modal(row, env, "log\n", locale, truncated=True))
        check(deploy_card(row, CardContext(env=None, now=T0), locale))
    validate_view(deploy_modal(cfg, locale, metadata="{}"))
    validate_view(rollback_modal(target(), env, locale, metadata="{}", undo=deploy()))
    check(history_message(history_page(2), cfg, locale, environment=None, status=None))
    validate_view(home_view([EnvHome(env, deploy(), running())], rows, locale, now=T0))
    check(help_message(help_rows(locale), locale))
    check(usage_error("bad", FULL_USAGE, locale))
    check(notice("ok"))


# --- the validator itself -------------------------------------------------------------------------


def _sample_views() -> list[dict]:
    responses = json.loads((PAYLOADS / "web_api_responses.json").read_text())["success"]
    slack_only = {"id", "team_id", "state", "hash", "previous_view_id", "root_view_id", "app_id", "bot_id",
                  "app_installed_team_id", "external_id", "clear_on_close"}  # fmt: skip
    return [
        {k: v for k, v in responses[m]["view"].items() if k not in slack_only}
        for m in ("views.open", "views.update", "views.publish")
    ]


def test_validator_accepts_the_samples() -> None:
    responses = json.loads((PAYLOADS / "web_api_responses.json").read_text())["success"]
    for method in ("chat.postMessage", "chat.update"):
        validate_message(responses[method]["message"])
    for view in _sample_views():
        validate_view(view)
    validate_message({"text": "only text"})
    validate_message({"text": "blocks as JSON", "blocks": json.dumps([{"type": "divider"}])})


def _card() -> dict:
    responses = json.loads((PAYLOADS / "web_api_responses.json").read_text())["success"]
    return copy.deepcopy({k: responses["chat.update"]["message"][k] for k in ("text", "blocks")})


def _section(text: str, block_id: str | None = None) -> dict:
    found = {"type": "section", "text": {"type": "mrkdwn", "text": text}}
    return found | ({"block_id": block_id} if block_id else {})


def _broken_messages() -> list[tuple[str, dict]]:
    dropped = _card()
    dropped["blocks"][0]["colour"] = "red"
    long_value = _card()
    long_value["blocks"][1]["elements"][0]["value"] = "9" * 2001
    long_action = _card()
    long_action["blocks"][1]["elements"][0]["action_id"] = "a" * 256
    same_action = _card()
    same_action["blocks"][1]["elements"][1]["action_id"] = "view_logs"
    long_button = _card()
    long_button["blocks"][1]["elements"][0]["text"]["text"] = "x" * 76
    return [
        ("51 blocks", {"text": "x", "blocks": [{"type": "divider"}] * 51}),
        ("characters", {"text": "x" * 40_001}),
        ("3000", {"text": "x", "blocks": [_section("x" * 3001)]}),
        ("used twice", {"text": "x", "blocks": [_section("a", "same"), _section("b", "same")]}),
        ("dropped", dropped),
        ("value is 2001", long_value),
        ("longer than 255", long_action),
        ("twice in one block", same_action),
        ("slack_sdk refuses", long_button),
        ("text fallback", {"blocks": [_section("no fallback")]}),
        ("empty", {"text": "x", "blocks": [_section("")]}),
        ("unknown block type", {"text": "x", "blocks": [{"type": "sparkle"}]}),
        ("neither text nor blocks", {"blocks": []}),
        ("not an object", {"text": "x", "blocks": ["divider"]}),
    ]


@pytest.mark.parametrize(("reason", "payload"), _broken_messages(), ids=[r for r, _ in _broken_messages()])
def test_validator_refuses_broken_messages(reason: str, payload: dict) -> None:
    with pytest.raises(AssertionError, match=reason):
        validate_message(payload)


def _broken_views() -> list[tuple[str, dict]]:
    modal = _sample_views()[0]
    home = _sample_views()[2]
    return [
        ("title", modal | {"title": {"type": "plain_text", "text": "x" * 25}}),
        ("submit", modal | {"submit": {"type": "plain_text", "text": "x" * 25}}),
        ("close", modal | {"close": {"type": "plain_text", "text": "x" * 25}}),
        ("private_metadata", modal | {"private_metadata": "x" * 3001}),
        ("needs a title", {k: v for k, v in modal.items() if k != "title"}),
        ("101 blocks", home | {"blocks": [{"type": "divider"}] * 101}),
        ("no submit or close", home | {"close": {"type": "plain_text", "text": "x"}}),
        ("neither modal nor home", modal | {"type": "workflow"}),
        ("used twice", home | {"blocks": [_section("a", "b"), _section("c", "b")]}),
        ("dropped", modal | {"colour": "red"}),
    ]


@pytest.mark.parametrize(("reason", "view"), _broken_views(), ids=[r for r, _ in _broken_views()])
def test_validator_refuses_broken_views(reason: str, view: dict) -> None:
    with pytest.raises(AssertionError, match=reason):
        validate_view(view)
