"""Block Kit renderers (bot/render.py), asserted on their dicts, and the validator that checks them
(tests/blockkit.py). Pure: rows are built in memory, no database."""

from __future__ import annotations

import copy
import json
import re
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot import i18n
from bot.slack import render
from bot.slack.grammar import FULL_USAGE, help_rows
from bot.config import Config, parse_config
from bot.i18n import t
from bot.deploy.progress import Step
from storage.models import Deploy
from storage.repository import Page
from tests.blockkit import validate_message, validate_view

SCRIPTS = Path(__file__).parent / "scripts"
PAYLOADS = Path("/work/shared/slack-payloads")
ADMIN, GUEST = "U0ADMIN01", "U0GUEST01"
T0 = datetime(2025, 11, 28, 9, 0, tzinfo=UTC)
SHA_42 = "3f9c2ab" + "0" * 33
SHA_41 = "a1b2c3d" + "1" * 33
COMMIT_URL = "https://git.example.com/app/commit/{commit}"
LOCALES = ("zh", "en")


# --- building rows and config ---------------------------------------------------------------------


def make_config(*, locale: str = "zh", commit_url: str = "") -> Config:
    script = str(SCRIPTS / "steps.sh")
    raw = {
        "bot": {"admins": [ADMIN], "locale": locale},
        "environments": {
            "production": {
                "label": "生产环境",
                "aliases": ["prod"],
                "script": script,
                "commit_url": commit_url,
            },
            "staging": {"label": "预发布环境", "script": script, "default_branch": "develop"},
            "testing": {"label": "测试环境", "script": script},
        },
    }
    return parse_config(raw, SCRIPTS / "deploybot.toml", {})


@pytest.fixture
def cfg() -> Config:
    return make_config()


def deploy(**fields) -> Deploy:
    """Deploy #42: production, main, succeeded in 2m41s after seven steps; override anything."""
    row = {
        "id": 42,
        "environment": "production",
        "branch": "main",
        "commit_hash": SHA_42,
        "status": "success",
        "deployed_by": ADMIN,
        "description": "",
        "created_at": T0,
        "started_at": T0,
        "completed_at": T0 + timedelta(seconds=161),
        "duration": 161,
        "step_current": 7,
        "step_total": 7,
        "step_title": "健康检查",
        "skip_build": False,
        "skip_migrations": False,
        "rollback_of": None,
        "error_message": None,
        "cancelled_by": None,
        "cancel_requested_by": None,
        "logs_cleared_at": None,
    } | fields
    return Deploy(**row)


def running(**fields) -> Deploy:
    return deploy(
        **{"id": 43, "status": "running", "completed_at": None, "duration": None, "step_current": 2,
           "step_title": "打包"} | fields
    )  # fmt: skip


def target() -> Deploy:
    return deploy(id=41, commit_hash=SHA_41, completed_at=T0 - timedelta(days=1))


def ctx(cfg: Config, *, seconds: float = 75, estimate: float | None = None, rollback: Deploy | None = None):
    return render.CardContext(
        env=cfg.environments["production"],
        now=T0 + timedelta(seconds=seconds),
        estimate=estimate,
        rollback_target=rollback,
    )


# --- reading the dicts ----------------------------------------------------------------------------


def block(message: render.Message | dict, block_id: str) -> dict:
    blocks = message.blocks if isinstance(message, render.Message) else message["blocks"]
    found = [b for b in blocks if b.get("block_id") == block_id]
    assert found, f"no block {block_id!r} in {[b.get('block_id') for b in blocks]}"
    return found[0]


def text_of(message: render.Message | dict, block_id: str) -> str:
    found = block(message, block_id)
    if "text" in found:
        return found["text"]["text"]
    return "\n".join(e["text"] for e in found.get("elements") or found.get("fields") or [])


def buttons(thing: render.Message | dict) -> dict[str, dict]:
    blocks = thing.blocks if isinstance(thing, render.Message) else thing["blocks"]
    found = {}
    for b in blocks:
        for element in [*(b.get("elements") or []), b.get("accessory") or {}]:
            if element.get("type") == "button":
                found.setdefault(element["action_id"], element)
    return found


def all_texts(thing) -> str:
    return json.dumps(thing, ensure_ascii=False)


def code_bodies(text: str) -> list[str]:
    return re.findall(r"```\n(.*?)\n```", text, re.S)


def check(message: render.Message) -> render.Message:
    validate_message(message.as_kwargs())
    return message


# --- catalogue ------------------------------------------------------------------------------------


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_catalogues_have_the_same_keys_and_placeholders() -> None:
    assert set(i18n.ZH) == set(i18n.EN)
    for key in i18n.ZH:
        assert _placeholders(i18n.ZH[key]) == _placeholders(i18n.EN[key]), key


def test_every_ui_key_the_renderer_uses_exists() -> None:
    source = (Path(render.__file__)).read_text(encoding="utf-8")
    used = set(re.findall(r'"(ui\.[a-z_.]+)"', source))
    assert used and used <= set(i18n.ZH)


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
    assert render.progress_bar(current, total, width) == f"`{'█' * filled}{'░' * (width - filled)}`"


# --- the deploy card ------------------------------------------------------------------------------


def card_ids(message: render.Message) -> list[str]:
    return [b["block_id"] for b in message.blocks]


def test_pending_card(cfg) -> None:
    row = running(status="pending", step_current=None, step_total=None, commit_hash=None, started_at=None)
    card = check(render.deploy_card(row, ctx(cfg), "zh"))
    assert card_ids(card) == [f"deploy_43_{part}" for part in ("summary", "fields", "progress", "actions")]
    assert text_of(card, "deploy_43_summary") == ":hourglass: *等待中* #43 · 生产环境 (`production`)"
    assert "*提交*\n待脚本报告" in text_of(card, "deploy_43_fields")
    assert text_of(card, "deploy_43_progress") == "`░░░░░░░░░░` 等待开始"
    assert set(buttons(card)) == {"view_logs", "cancel_deploy"}


@pytest.mark.parametrize("locale", LOCALES)
def test_running_card_with_markers_has_bar_step_elapsed_and_a_confirmed_cancel(cfg, locale) -> None:
    card = check(render.deploy_card(running(), ctx(cfg, seconds=75), locale))
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
    card = check(render.deploy_card(row, ctx(cfg, seconds=75, estimate=300), "zh"))
    assert text_of(card, "deploy_43_progress") == "`███░░░░░░░` 预计 25% · 已用时 1分15秒，通常约 5分0秒"

    late = check(render.deploy_card(row, ctx(cfg, seconds=400, estimate=300), "zh"))
    assert text_of(late, "deploy_43_progress") == "`██████████` 已用时 6分40秒，超过了通常的 5分0秒"

    unknown = check(render.deploy_card(row, ctx(cfg, seconds=75), "zh"))
    assert text_of(unknown, "deploy_43_progress") == "已用时 1分15秒"


def test_running_card_with_markers_ignores_the_estimate(cfg) -> None:
    card = render.deploy_card(running(), ctx(cfg, estimate=300), "zh")
    assert "预计" not in text_of(card, "deploy_43_progress")


def test_success_card_looks_like_the_sample_and_offers_rollback_to_the_previous_version(cfg) -> None:
    card = check(render.deploy_card(deploy(), ctx(cfg, rollback=target()), "zh"))
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
    assert _without(rollback["confirm"], {"verbatim"}) == _without(sample_confirm, {"verbatim"})
    assert "a1b2c3d" in rollback["confirm"]["text"]["text"]
    assert set(buttons(card)) == {"view_logs", "rollback"}


def test_success_card_without_an_earlier_version_has_no_rollback(cfg) -> None:
    card = check(render.deploy_card(deploy(), ctx(cfg), "zh"))
    assert set(buttons(card)) == {"view_logs"}


def test_failed_card_shows_the_step_and_the_error(cfg) -> None:
    error = "脚本退出码 3: ERROR: migration <0042> & ```boom```"
    row = deploy(id=44, status="failed", step_current=5, step_title="数据库迁移", error_message=error)
    card = check(render.deploy_card(row, ctx(cfg), "zh"))
    assert text_of(card, "deploy_44_progress") == "`████████░░` 5/7 数据库迁移 · 失败于 11-28 09:02 UTC"
    shown = text_of(card, "deploy_44_error")
    assert code_bodies(shown) == ["脚本退出码 3: ERROR: migration &lt;0042&gt; &amp; ˋˋˋboomˋˋˋ"]
    assert card_ids(card)[-1] == "deploy_44_actions" and set(buttons(card)) == {"view_logs"}


def test_cancelled_card_says_who_cancelled(cfg) -> None:
    row = deploy(
        id=45, status="cancelled", cancelled_by=GUEST, step_current=3, error_message="已被 U0GUEST01 取消"
    )
    card = check(render.deploy_card(row, ctx(cfg), "en"))
    assert text_of(card, "deploy_45_progress").endswith(f"cancelled by <@{GUEST}> · 11-28 09:02 UTC")
    assert ":no_entry_sign: *Cancelled* #45" in text_of(card, "deploy_45_summary")
    assert "deploy_45_error" not in card_ids(card) and set(buttons(card)) == {"view_logs"}


def test_rollback_card_says_which_version_it_restores(cfg) -> None:
    card = check(render.deploy_card(running(rollback_of=41, commit_hash=SHA_41), ctx(cfg), "zh"))
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
    card = check(render.deploy_card(row, ctx(cfg), "zh"))
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
    card = check(render.deploy_card(row, ctx(cfg), "zh"))
    error = text_of(card, "deploy_44_error")
    assert error.endswith("\n```") and len(code_bodies(error)) == 1
    description = block(card, "deploy_44_fields")["fields"][-1]["text"]
    assert description.endswith("&amp;…") and "…" not in text_of(card, "deploy_44_fields").replace(
        description, ""
    )
    for message in (card, render.final_reply(row, ctx(cfg), (), "zh")):
        for piece in re.findall(r"&[a-z]*;?", all_texts(message.blocks)):
            assert piece in ("&amp;", "&lt;", "&gt;"), piece


def test_deployer_display() -> None:
    assert render._deployer("U0ADMIN01") == "<@U0ADMIN01>"
    assert render._deployer("W012ABCDE") == "<@W012ABCDE>"
    assert render._deployer("api:ci") == "api:ci"
    assert render._deployer("zhang.wei") == "zhang.wei"
    assert render._deployer("<@U1>") == "&lt;@U1&gt;"


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
    assert (render._duration(seconds, "zh"), render._duration(seconds, "en")) == (zh, en)


# --- thread replies -------------------------------------------------------------------------------


def test_step_reply_quotes_the_previous_step() -> None:
    step = Step(2, 7, "打包", ("npm run build", "built in 31s & <ok>"))
    reply = check(render.step_reply(running(), step, "zh"))
    assert reply.text == "[2/7] 打包"
    assert text_of(reply, "step_title") == "*[2/7]* 打包"
    assert code_bodies(text_of(reply, "step_log")) == ["npm run build\nbuilt in 31s &amp; &lt;ok&gt;"]


def test_step_reply_without_lines_or_total_or_title() -> None:
    reply = check(render.step_reply(running(), Step(3, None, ""), "en"))
    assert reply.text == "[3] Step 3" and len(reply.blocks) == 1


def test_step_reply_stays_in_limits_with_huge_lines() -> None:
    huge = ("&" * 1_000_000, "<" * 1_000_000, "x" * 1_000_000 + "NEWEST")
    reply = check(render.step_reply(running(), Step(2, 7, "打包", huge), "zh"))
    assert len(text_of(reply, "step_log")) <= 3000


def test_step_reply_keeps_the_newest_of_ten_thousand_lines_and_says_how_many_were_left_out() -> None:
    lines = tuple(f"line {i} ```" for i in range(10_000))
    reply = check(render.step_reply(running(), Step(2, 7, "打包", lines), "zh"))
    shown = text_of(reply, "step_log")
    body = code_bodies(shown)[0].split("\n")
    assert body[-1] == "line 9999 ˋˋˋ" and "```" not in "".join(body)
    assert len(shown) <= 3000
    assert t("zh", "ui.log.omitted", count=10_000 - len(body)) in shown


def test_final_reply_on_success_mentions_the_deployer_with_duration_and_rollback(cfg) -> None:
    reply = check(render.final_reply(deploy(), ctx(cfg, rollback=target()), ("done",), "zh"))
    summary = text_of(reply, "final_summary")
    assert summary.startswith("<@U0ADMIN01> :white_check_mark: *部署成功* #42") and "耗时 2分41秒" in summary
    assert reply.text.startswith("<@U0ADMIN01> ")
    rollback = buttons(reply)["rollback"]
    assert (rollback["value"], rollback["text"]["text"]) == ("42", "回滚到 #41")
    assert "a1b2c3d" in rollback["confirm"]["text"]["text"]
    assert "```" not in all_texts(reply.blocks)  # no log on success


def test_final_reply_on_success_without_an_earlier_version(cfg) -> None:
    reply = check(render.final_reply(deploy(deployed_by="api:ci"), ctx(cfg), (), "en"))
    assert text_of(reply, "final_summary").startswith("api:ci :white_check_mark: *Succeeded* #42")
    assert "took 2m 41s" in text_of(reply, "final_summary")
    assert set(buttons(reply)) == {"view_logs"}


def test_final_reply_on_failure_has_the_error_and_the_last_thirty_lines(cfg) -> None:
    row = deploy(id=44, status="failed", error_message="脚本退出码 3: ERROR: boom")
    tail = [f"line {i}" for i in range(60)]
    reply = check(render.final_reply(row, ctx(cfg, rollback=target()), tail, "zh"))
    assert "脚本退出码 3: ERROR: boom" in text_of(reply, "final_error")
    body = code_bodies(text_of(reply, "final_tail"))[0].split("\n")
    assert body == [f"line {i}" for i in range(30, 60)]
    assert "rollback" not in buttons(reply) and "view_logs" in buttons(reply)


def test_final_reply_tail_stays_in_limits_with_megabyte_lines(cfg) -> None:
    row = deploy(id=44, status="failed", error_message="E" * 1_000_000)
    tail = ["<&>" * 400_000 for _ in range(29)] + ["the end"]
    reply = check(render.final_reply(row, ctx(cfg), tail, "zh"))
    shown = text_of(reply, "final_tail")
    assert len(shown) <= 3000 and code_bodies(shown)[0].endswith("the end")
    assert len(text_of(reply, "final_error")) <= 3000


def test_final_reply_on_cancel_names_who(cfg) -> None:
    row = deploy(id=45, status="cancelled", cancelled_by=GUEST, error_message="已被 U0GUEST01 取消")
    reply = check(render.final_reply(row, ctx(cfg), ["step 3", "Terminated"], "zh"))
    assert f"已被 <@{GUEST}> 取消" in text_of(reply, "final_summary")
    assert code_bodies(text_of(reply, "final_tail")) == ["step 3\nTerminated"]


# --- modals ---------------------------------------------------------------------------------------

SLACK_ECHOES = {"dispatch_action", "dispatch_action_config"}  # defaults Slack adds to a stored view


def _without(node, keys: set[str]):
    if isinstance(node, dict):
        return {k: _without(v, keys) for k, v in node.items() if k not in keys}
    if isinstance(node, list):
        return [_without(v, keys) for v in node]
    return node


def test_deploy_modal_matches_the_submitted_sample(cfg) -> None:
    sample = json.loads((PAYLOADS / "view_submission.json").read_text())["view"]
    view = render.deploy_modal(cfg, "zh", metadata=json.dumps({"channel_id": "C0DEPLOY1"}))
    validate_view(view)
    blocks = _without(view["blocks"], {"max_length"})
    # Two chosen differences: the environment select is sent as soon as it changes, and the branch
    # input's action_id names the environment (so that a change resets it to that default branch).
    assert blocks[0].pop("dispatch_action") is True
    assert blocks[1]["element"]["action_id"] == "branch_input:production"
    blocks[1]["element"]["action_id"] = "branch_input"
    assert blocks == _without(sample["blocks"], SLACK_ECHOES)
    for key in ("callback_id", "title", "submit", "close", "private_metadata", "notify_on_close"):
        assert view[key] == sample[key], key


def test_deploy_modal_preselects_the_asked_environment_and_branch(cfg) -> None:
    view = render.deploy_modal(cfg, "en", metadata="{}", environment="staging")
    validate_view(view)
    assert block(view, "env")["element"]["initial_option"]["value"] == "staging"
    assert block(view, "branch")["element"]["initial_value"] == "develop"  # staging's default branch
    assert block(view, "branch")["element"]["action_id"] == "branch_input:staging"
    view = render.deploy_modal(cfg, "en", metadata="{}", environment="prod", branch="release/1.2")
    assert block(view, "env")["element"]["initial_option"]["value"] == "production"
    assert block(view, "branch")["element"]["initial_value"] == "release/1.2"
    assert view["title"]["text"] == "Deploy" and block(view, "options")["optional"] is True


def test_rollback_modal_names_the_target(cfg) -> None:
    meta = json.dumps({"target_id": 41, "undo_id": 42, "channel_id": "C0DEPLOY1"})
    view = render.rollback_modal(target(), cfg.environments["production"], "zh", metadata=meta, undo=deploy())
    validate_view(view)
    assert (view["callback_id"], view["private_metadata"]) == ("rollback_modal", meta)
    shown = text_of(view, "rollback_target")
    for part in ("生产环境", "#41", "`a1b2c3d`", "`main`", "#42", "`3f9c2ab`"):
        assert part in shown
    reason = block(view, "reason")
    assert (reason["optional"], reason["element"]["action_id"]) == (True, "reason_input")


def test_rollback_modal_without_undo_and_with_a_removed_environment(cfg) -> None:
    row = deploy(id=41, environment="legacy", branch="<hotfix>", commit_hash=SHA_41)
    view = render.rollback_modal(row, None, "en", metadata="{}")
    validate_view(view)
    shown = text_of(view, "rollback_target")
    assert "`legacy`" in shown and "&lt;hotfix&gt;" in shown and "undoes" not in shown


def test_log_modal(cfg) -> None:
    log = "[4/7] 解压发布包\nunpacked <release> & ```done```\n[5/7] 运行数据库迁移\n"
    view = render.log_modal(running(), cfg.environments["production"], log, "zh", truncated=False)
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
    view = render.log_modal(running(), cfg.environments["production"], log, "en", truncated=True)
    validate_view(view)
    sections = [b for b in view["blocks"] if b["block_id"].startswith("log_tail_")]
    assert 1 < len(sections) <= render.LOG_MODAL_SECTIONS
    assert code_bodies(sections[-1]["text"]["text"])[0].endswith("LAST LINE")
    assert text_of(view, "log_note") == t("en", "ui.log.earlier")


def test_log_modal_empty_and_cleared(cfg) -> None:
    view = render.log_modal(running(), None, "", "zh", truncated=False)
    validate_view(view)
    assert text_of(view, "log_note") == t("zh", "ui.log.empty")
    cleared = deploy(logs_cleared_at=T0 + timedelta(days=30))
    view = render.log_modal(cleared, None, "", "zh", truncated=False)
    assert text_of(view, "log_note") == t("zh", "ui.log.cleared", time="12-28 09:00")


# --- history --------------------------------------------------------------------------------------


def history_page(number: int, *, total: int = 25, size: int = 10) -> Page:
    first = total - (number - 1) * size
    statuses = ("success", "failed", "running", "cancelled", "success")
    items = [
        deploy(id=i, status=statuses[i % 5], branch=f"b{i}", completed_at=None if i % 5 == 2 else T0)
        for i in range(first, max(first - size, 0), -1)
    ]
    return Page(items=items, total=total, page=number, page_size=size)


def test_history_rows_filters_and_per_row_buttons(cfg) -> None:
    message = check(render.history_message(history_page(1), cfg, "zh", environment="prod", status="success"))
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


def test_history_pager_on_first_middle_last_and_only_page(cfg) -> None:
    def pager(page: Page) -> dict[str, dict]:
        message = check(render.history_message(page, cfg, "en", environment=None, status="failed"))
        return {k: json.loads(v["value"]) for k, v in buttons(message).items() if k.startswith("history_")}

    assert pager(history_page(1)) == {"history_next": {"env": None, "status": "failed", "page": 2}}
    assert pager(history_page(2)) == {
        "history_prev": {"env": None, "status": "failed", "page": 1},
        "history_next": {"env": None, "status": "failed", "page": 3},
    }
    assert pager(history_page(3)) == {"history_prev": {"env": None, "status": "failed", "page": 2}}
    only = render.history_message(history_page(1, total=4), cfg, "en", environment=None, status=None)
    assert "history_pager" not in card_ids(only)


def test_history_empty_and_oversized_pages_stay_within_fifty_blocks(cfg) -> None:
    empty = check(render.history_message(Page([], 0, 1, 10), cfg, "zh", environment=None, status=None))
    assert text_of(empty, "history_empty") == t("zh", "ui.history.empty")
    filters = block(empty, "history_filters")["elements"]
    assert [f["initial_option"]["value"] for f in filters] == ["all", "all"]

    big = check(
        render.history_message(history_page(1, total=100, size=40), cfg, "zh", environment=None, status=None)
    )
    assert len(big.blocks) <= 50 and "history_more" in card_ids(big) and "history_pager" in card_ids(big)


def test_history_fits_in_a_modal_too(cfg) -> None:
    message = render.history_message(history_page(2), cfg, "zh", environment=None, status=None)
    validate_view(
        {"type": "modal", "title": {"type": "plain_text", "text": "部署历史"}, "blocks": message.blocks}
    )


# --- App Home, help, notices ----------------------------------------------------------------------


def test_app_home(cfg) -> None:
    envs = [
        render.EnvHome(env=cfg.environments["production"], live=deploy(), running=running(), estimate=None),
        render.EnvHome(
            env=cfg.environments["staging"],
            live=None,
            running=running(id=50, environment="staging", step_current=None, step_total=None),
            estimate=300,
        ),
        render.EnvHome(env=cfg.environments["testing"], live=None, running=None),
    ]
    view = render.home_view(envs, [running(), deploy(), target()], "zh", now=T0 + timedelta(seconds=75))
    validate_view(view)
    assert (view["type"], view["callback_id"]) == ("home", "app_home")
    production = text_of(view, "home_env_production")
    assert production.startswith(
        "*生产环境* `production`\n当前版本 #42 · `3f9c2ab` · `main` · 11-28 09:02 由 <@U0ADMIN01> 部署"
    )
    assert "正在部署 #43（`main`，<@U0ADMIN01>）：`███░░░░░░░` 2/7 打包" in production
    assert "预计 25%" in text_of(view, "home_env_staging") and "还没有成功的部署" in text_of(
        view, "home_env_staging"
    )
    assert block(view, "home_env_testing")["accessory"]["value"] == "testing"
    assert buttons(view)["open_deploy_modal"]["style"] == "primary"
    recent = text_of(view, "home_recent_1").split("\n")
    assert len(recent) == 3 and recent[0].startswith(":hourglass_flowing_sand: *#43*")


def test_app_home_with_many_environments_and_no_deploys(cfg) -> None:
    base = cfg.environments["testing"]
    envs = [render.EnvHome(base.model_copy(update={"name": f"env{i}"}), None, None) for i in range(150)]
    view = render.home_view(envs, [], "en", now=T0)
    validate_view(view)
    assert t("en", "ui.home.no_recent") in text_of(view, "home_recent_1")


def test_help_lists_every_form_and_offers_the_deploy_modal() -> None:
    rows = help_rows("zh")
    message = check(render.help_message(rows, "zh"))
    shown = "\n".join(b["text"]["text"] for b in message.blocks if b["type"] == "section")
    for syntax, description in rows:
        assert f"`{render._escape(syntax)}` — {description}" in shown
    assert "/deploy logs &lt;id&gt;" in shown and "<id>" not in shown
    assert buttons(message)["open_deploy_modal"]["text"]["text"] == "一键部署"


def test_notice_keeps_the_text_and_only_the_bots_own_links() -> None:
    plain = t("en", "error.deploy_not_found", deploy_id=99)
    assert check(render.notice(plain)).text == plain
    tricky = render.notice("deploy by <@U0ADMIN01> of `a<!channel>&b` see <https://x.example/a?b=1&c=2|log>")
    check(tricky)
    assert tricky.text == (
        "deploy by <@U0ADMIN01> of `a&lt;!channel&gt;&amp;b` see <https://x.example/a?b=1&c=2|log>"
    )
    assert check(render.notice("x" * 50_000)).blocks[0]["text"]["text"].endswith("…")


def test_usage_error_shows_the_usage_literally() -> None:
    message = check(render.usage_error("未知的子命令或环境 `moon`", FULL_USAGE, "zh"))
    assert text_of(message, "usage_error") == ":warning: 未知的子命令或环境 `moon`"
    preformatted = block(message, "usage")["elements"][0]["elements"][0]["text"]
    assert preformatted == FULL_USAGE and "/deploy logs <id>" in preformatted
    assert "<id>" not in message.text and "&lt;id&gt;" in message.text
    assert [b["block_id"] for b in check(render.usage_error("bad", "", "en")).blocks] == ["usage_error"]


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
        context = render.CardContext(env=env, now=T0, estimate=120, rollback_target=target())
        check(render.deploy_card(row, context, locale))
        check(render.final_reply(row, context, ("a", "b"), locale))
        check(render.step_reply(row, Step(3, 7, "上传", ("x",)), locale))
        validate_view(render.log_modal(row, env, "log\n", locale, truncated=True))
        check(render.deploy_card(row, render.CardContext(env=None, now=T0), locale))
    validate_view(render.deploy_modal(cfg, locale, metadata="{}"))
    validate_view(render.rollback_modal(target(), env, locale, metadata="{}", undo=deploy()))
    check(render.history_message(history_page(2), cfg, locale, environment=None, status=None))
    validate_view(render.home_view([render.EnvHome(env, deploy(), running())], rows, locale, now=T0))
    check(render.help_message(help_rows(locale), locale))
    check(render.usage_error("bad", FULL_USAGE, locale))
    check(render.notice("ok"))


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
