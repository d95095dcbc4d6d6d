"""`deploybot console`: the Block Kit text renderer on its own, then scripted console sessions
against the real bot, the demo app and a real database (SQLite and PostgreSQL), asserted on the
transcript and on the world (the database, the demo app's HTTP answer)."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bot.console.render import (
    controls,
    mrkdwn,
    render_blocks,
    render_confirm,
    render_errors,
    render_view,
    strip_ansi,
)
from bot.console.session import Console, run_console
from bot.i18n import t
from storage.models import Status
from tests.conftest import GUEST, PAYLOADS, free_port
from tests.fakeslack import FakeSlack

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# --- the renderer (pure) ----------------------------------------------------------------------


def plain(text: str) -> dict:
    return {"type": "plain_text", "text": text, "emoji": True}


def md(text: str) -> dict:
    return {"type": "mrkdwn", "text": text}


CARD = [
    {
        "type": "section",
        "block_id": "deploy_42_summary",
        "text": md(":white_check_mark: *部署成功* #42 · 生产环境"),
    },
    {
        "type": "section",
        "block_id": "deploy_42_fields",
        "fields": [md("*分支*\n`main`"), md("*提交*\n`3f9c2ab`"), md("*部署人*\n<@U0ADMIN01>")],
    },
    {"type": "context", "block_id": "deploy_42_progress", "elements": [md("`██████████` 7/7 健康检查")]},
    {
        "type": "actions",
        "block_id": "deploy_42_actions",
        "elements": [
            {"type": "button", "action_id": "view_logs", "text": plain("查看日志"), "value": "42"},
            {
                "type": "button",
                "action_id": "rollback",
                "text": plain("回滚"),
                "style": "danger",
                "value": "42",
                "confirm": {
                    "title": plain("确认回滚？"),
                    "text": md("将把 *生产环境* 回滚到 #41（`a1b2c3d`）"),
                    "confirm": plain("回滚"),
                    "deny": plain("取消"),
                },
            },
        ],
    },
]


def test_card_renders_as_readable_lines_with_numbered_buttons() -> None:
    lines = render_blocks(CARD, [3, 4], names={"U0ADMIN01": "zhang.wei"})
    assert lines == [
        "✅ 部署成功 #42 · 生产环境",
        "分支: main   提交: 3f9c2ab",
        "部署人: @zhang.wei",
        "██████████ 7/7 健康检查",
        "[3] 查看日志  [4] 回滚",
    ]


def test_controls_are_listed_in_display_order_including_accessories() -> None:
    blocks = [
        {
            "type": "section",
            "text": md("row"),
            "accessory": {"type": "button", "action_id": "a", "text": plain("A")},
        },
        *CARD,
    ]
    assert [c.action_id for c in controls(blocks)] == ["a", "view_logs", "rollback"]
    assert render_blocks(blocks, [7, 8, 9])[0] == "row  [7] A"


def test_mrkdwn_code_blocks_links_and_entities() -> None:
    lines = mrkdwn("*[2/7] 打包*\n```build ok\n&lt;done&gt;```\nsee <http://x/c/1|abc1234> :rocket: <!here>")
    assert lines == ["[2/7] 打包", "  │ build ok", "  │ <done>", "see abc1234 (http://x/c/1) 🚀 @here"]
    assert mrkdwn("keep skip_build and 2*3*4 as they are") == ["keep skip_build and 2*3*4 as they are"]


def test_colour_is_only_styling() -> None:
    coloured = render_blocks(CARD, [1, 2], color=True)
    assert any("\x1b[" in line for line in coloured)
    assert [strip_ansi(line) for line in coloured] == render_blocks(CARD, [1, 2])


def test_modal_shows_inputs_choices_and_its_buttons() -> None:
    view = json.loads((PAYLOADS / "view_submission.json").read_text())["view"]
    lines = render_view(view)
    assert lines[0] == "┌─ 一键部署"
    assert "│ 部署环境: 生产环境 (production)" in lines
    assert any("production=生产环境 | staging=预发布环境" in line for line in lines)
    assert "│ Git分支: main" in lines
    assert any("[ ] 跳过构建步骤 (skip_build)" in line for line in lines)
    assert lines[-1] == "└─ 〔开始部署〕 / 〔取消〕"
    assert render_errors({"branch": "无效"}, view) == ["✖ Git分支: 无效"]


def test_confirm_dialog_asks_yes_or_no() -> None:
    confirm = CARD[3]["elements"][1]["confirm"]
    assert render_confirm(confirm) == [
        "确认回滚？",
        "将把 生产环境 回滚到 #41（a1b2c3d）",
        "y = 回滚 / n = 取消",
    ]


def test_home_view_and_unknown_blocks_do_not_break() -> None:
    home = {
        "type": "home",
        "blocks": [{"type": "header", "text": plain("部署")}, {"type": "divider"}, {"type": "video"}],
    }
    lines = render_view(home, locale="en")
    assert lines[0] == "┌─ App Home"
    assert lines[1] == "│ ■ 部署"
    assert lines[3] == "│ [video]"


# --- console sessions -------------------------------------------------------------------------


class Demo:
    """The demo repo in tmp_path and where each environment's app lives."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.repo = state / "app.git"
        self.ports = {"production": free_port(), "staging": free_port()}

    def environment(self, name: str, label: str, **extra) -> dict:
        return {
            "label": label,
            "script": str(EXAMPLES / "deploy.sh"),
            "args": [
                "--repo",
                str(self.repo),
                "--root",
                str(self.state / name),
                "--port",
                str(self.ports[name]),
            ],
            "repo": str(self.repo),
            **extra,
        }

    def environments(self) -> dict:
        return {
            "production": self.environment("production", "生产环境", aliases=["prod", "生产"]),
            "staging": self.environment("staging", "预发布环境"),
            "slow": {"label": "慢速环境", "script": str(EXAMPLES / "slow-deploy.sh")},
        }

    def stop(self) -> None:
        roots = [str(self.state / name) for name in self.ports]
        subprocess.run([str(EXAMPLES / "demo-stop.sh"), *roots], capture_output=True, timeout=30)


@pytest.fixture
def demo(tmp_path) -> Demo:
    state = tmp_path / "demo"
    subprocess.run(
        [str(EXAMPLES / "prepare-demo.sh"), str(state)], check=True, capture_output=True, timeout=60
    )
    demo = Demo(state)
    yield demo
    demo.stop()


BASE_ENV = {**os.environ, "DEMO_STEP_DELAY": "0", "SLOW_STEP_SECONDS": "30"}

StartConsole = Callable[..., Console]


@pytest.fixture
async def start_console(make_config, demo, tmp_path) -> AsyncIterator[StartConsole]:
    started: list[tuple[Console, FakeSlack]] = []

    async def start(user: str | None = None, default_branches: dict[str, str] | None = None) -> Console:
        environments = demo.environments()
        for name, branch in (default_branches or {}).items():
            environments[name]["default_branch"] = branch
        config = make_config(environments=environments)
        fake = FakeSlack()
        console = Console(config, user=user, base_env=BASE_ENV, files_dir=tmp_path / "files", slack=fake)
        started.append((console, fake))
        return await console.start()

    yield start
    for console, fake in started:
        await console.close()
        assert fake.violations == [], f"the bot sent Block Kit that Slack refuses: {fake.violations}"


@pytest.fixture
async def console(start_console) -> Console:
    return await start_console()


def since(console: Console, marker: str) -> str:
    """The transcript after the last line equal to `marker` (an echoed command)."""
    lines = console.transcript
    index = max(i for i, line in enumerate(lines) if line == marker)
    return "\n".join(lines[index + 1 :])


def button(console: Console, label: str) -> int:
    """The number of the newest button shown with `label`."""
    numbers = re.findall(rf"\[(\d+)\] {re.escape(label)}", console.text)
    assert numbers, f"no button {label!r} in the transcript"
    return int(numbers[-1])


async def history(console: Console):
    return (await console.runtime.service.history(page_size=100)).items


async def version(console: Console, demo: Demo, env: str = "production") -> str:
    url = f"http://127.0.0.1:{demo.ports[env]}/version"
    await console.feed(f"http {url}")
    return since(console, f"> http {url}").split("\n")[1].strip()


async def test_deploy_to_production_shows_seven_steps_and_the_app_answers_the_new_version(
    console, demo
) -> None:
    await console.feed("/deploy production v1")
    await console.feed("wait")

    [deploy] = await history(console)
    assert deploy.state is Status.SUCCESS and deploy.branch == "v1"
    shown = since(console, "> /deploy production v1")
    for step in range(1, 8):
        assert f"[{step}/7]" in shown
    assert "── 消息 1 · #deploys ──" in shown  # the card
    assert "↳ 消息 2 · 回复消息 1" in shown  # its thread
    assert "↻ 消息 1 已更新" in shown  # updated in place
    assert "[1] 查看日志" in shown
    assert await version(console, demo) == "1.0"
    assert console.failures == 0


async def test_rollback_button_on_the_card_brings_the_old_version_back(console, demo) -> None:
    await console.feed("/deploy production v1")
    await console.feed("wait")
    await console.feed("/deploy production main")
    await console.feed("wait")
    assert await version(console, demo) == "2.0"

    number = button(console, "回滚")  # the newest: the card of the 2.0 deploy, updated last
    await console.feed(str(number))
    assert "y = " in since(console, f"> {number}")  # a confirm dialog first
    await console.feed("y")
    assert "┌─ 回滚" in since(console, "y/n > y")  # then the modal naming the target
    await console.feed("")  # keep the empty reason: submit
    await console.feed("wait")

    deploys = sorted(await history(console), key=lambda d: d.id)
    assert len(deploys) == 3
    first, _, rollback = deploys
    assert rollback.state is Status.SUCCESS
    assert rollback.rollback_of == first.id and rollback.commit_hash == first.commit_hash
    assert await version(console, demo) == "1.0"
    assert console.failures == 0


async def test_cancel_of_a_slow_deploy_by_button(console) -> None:
    await console.feed("/deploy slow")
    [deploy] = await history(console)
    assert deploy.state.is_active

    number = button(console, "取消部署")
    await console.feed(str(number))
    assert "y = " in since(console, f"> {number}")  # a confirm dialog first
    await console.feed("y")
    await console.feed("wait")

    [deploy] = await history(console)
    assert deploy.state is Status.CANCELLED
    assert deploy.cancelled_by == console.user.id
    assert t("zh", "status.cancelled") in since(console, "y/n > y")
    assert console.failures == 0


async def test_a_confirm_answered_no_does_nothing(console) -> None:
    await console.feed("/deploy slow")
    await console.feed(f"{button(console, '取消部署')} n")
    [deploy] = await history(console)
    assert deploy.state.is_active
    assert t("zh", "console.confirm_denied") in console.text
    await console.feed(f"{button(console, '取消部署')} y")
    await console.feed("wait")
    [deploy] = await history(console)
    assert deploy.state is Status.CANCELLED


async def test_history_lists_the_deploys(console) -> None:
    await console.feed("/deploy production v1")
    await console.feed("wait")
    await console.feed("/deploy staging main")
    await console.feed("wait")
    await console.feed("/deploy history")

    shown = since(console, "> /deploy history")
    assert "仅你可见" in shown
    deploys = await history(console)
    for deploy in deploys:
        assert f"#{deploy.id}" in shown
        assert deploy.short_commit in shown
    assert "v1" in shown and "main" in shown


async def test_menus_redraw_the_history_in_place_and_app_home_shows_the_live_version(console) -> None:
    await console.feed("/deploy production v1")
    await console.feed("wait")
    await console.feed("/deploy history")
    number = int(re.findall(r"\[(\d+)\] 全部环境 ▾", console.text)[-1])

    await console.feed(f"{number}")  # a menu: its options are listed, the next line picks one
    assert "staging = 预发布环境" in since(console, f"> {number}")
    await console.feed("staging")
    redrawn = since(console, "全部环境 > staging")
    assert redrawn.startswith("── ↻ 消息")
    assert f"[{number}] 预发布环境 ▾" in redrawn
    assert "#1 ·" not in redrawn  # the production deploy is filtered out

    await console.feed("home")
    [deploy] = await history(console)
    home = since(console, "> home")
    assert home.startswith("┌─ App 主页")
    assert f"#{deploy.id}" in home and deploy.short_commit in home
    await console.feed("press 一键部署")
    assert "┌─ 一键部署" in since(console, "> press 一键部署")


async def test_the_deploy_modal_filled_in_one_line(console) -> None:
    await console.feed("/deploy")
    assert "┌─ 一键部署" in console.text
    await console.feed("env=staging branch=v1 skip_build=yes description='from the console'")
    await console.feed("wait")

    [deploy] = await history(console)
    assert (deploy.environment, deploy.branch, deploy.skip_build, deploy.skip_migrations) == (
        "staging",
        "v1",
        True,
        False,
    )
    assert deploy.description == "from the console"
    assert deploy.state is Status.SUCCESS


async def test_the_deploy_modal_filled_field_by_field(console) -> None:
    await console.feed("/deploy")
    for answer in ("2", "v1", "", "n", "y"):  # env by number, branch, no description, skip migrations
        await console.feed(answer)
    await console.feed("wait")

    [deploy] = await history(console)
    assert (deploy.environment, deploy.branch, deploy.skip_build, deploy.skip_migrations) == (
        "staging",
        "v1",
        False,
        True,
    )


async def test_choosing_another_environment_in_the_modal_brings_its_default_branch(start_console) -> None:
    console = await start_console(default_branches={"staging": "v1"})
    await console.feed("/deploy")
    for answer in ("staging", "", "", "n", "n"):  # the branch left as the redrawn modal shows it
        await console.feed(answer)
    await console.feed("wait")
    [deploy] = await history(console)
    assert (deploy.environment, deploy.branch) == ("staging", "v1")
    assert "Git分支: v1" in console.text  # the modal was shown again with staging's branch

    await console.feed("/deploy")  # the same in one line
    await console.feed("env=staging description=again")
    await console.feed("wait")
    deploy = max(await history(console), key=lambda d: d.id)
    assert (deploy.environment, deploy.branch, deploy.description) == ("staging", "v1", "again")


async def test_a_refused_modal_shows_the_error_on_its_field_and_starts_nothing(console) -> None:
    await console.feed("/deploy")
    await console.feed("env=production branch=no-such-branch")
    assert "✖ Git分支" in console.text
    assert await history(console) == []
    await console.feed("close")
    assert t("zh", "console.modal_closed") in console.text


async def test_a_bad_command_prints_the_usage_and_changes_nothing(console) -> None:
    await console.feed("/deploy frobnicate")
    shown = since(console, "> /deploy frobnicate")
    assert "frobnicate" in shown
    assert "/deploy" in shown  # the usage
    assert console.failures == 0  # the bot answered; the console understood the line

    await console.feed("frobnicate")
    assert t("zh", "console.unknown_line", line="frobnicate") in console.text
    assert console.failures == 1
    await console.feed("99")
    assert t("zh", "console.unknown_button", n=99) in console.text
    assert await history(console) == []


async def test_a_non_admin_identity_is_refused_and_nothing_starts(start_console, demo) -> None:
    console = await start_console(user=GUEST)
    assert "非管理员" in console.transcript[0]
    await console.feed("/deploy production main")
    await console.feed("/deploy")
    await console.feed("wait")

    assert console.text.count(t("zh", "error.not_admin")) == 2
    assert "┌─ 一键部署" not in console.text
    assert await history(console) == []
    assert not (demo.state / "production" / "app.pid").exists()


async def test_a_name_as_identity_is_a_non_admin_user(start_console) -> None:
    console = await start_console(user="li.na")
    assert console.user.id == GUEST
    console = await start_console(user="someone")
    assert console.user.name == "someone" and console.user.id.startswith("U")
    await console.feed("/deploy history")
    assert t("zh", "error.not_admin") in console.text


async def test_http_only_opens_loopback_addresses(console) -> None:
    await console.feed("http https://example.com/")
    assert t("zh", "console.http_loopback_only", url="https://example.com/") in console.text
    await console.feed(f"http 127.0.0.1:{free_port()}/")
    assert "失败" in console.text.split("\n")[-1]


async def test_a_failed_deploy_saves_its_log_file(console, tmp_path) -> None:
    await console.feed("/deploy production no-such-commit-but-valid")
    # the branch does not exist: refused before anything starts
    assert await history(console) == []
    await console.feed("/deploy slow")
    await console.feed(f"{button(console, '取消部署')} y")
    await console.feed("wait")
    saved = list((tmp_path / "files").iterdir())
    assert [p.name for p in saved] == ["deploy-1.log"]
    assert "已保存到" in console.text
    assert "慢速部署" in saved[0].read_text()


# --- the CLI entry ------------------------------------------------------------------------------


def write_config(tmp_path: Path, db_url: str, demo: Demo) -> Path:
    lines = ["[bot]", 'admins = ["U0ADMIN01"]', f"database_url = {json.dumps(db_url)}", ""]
    for name, env in demo.environments().items():
        lines.append(f"[environments.{name}]")
        lines.extend(f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in env.items())
        lines.append("")
    path = tmp_path / "deploybot.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


async def test_quickstart_script_runs_and_exits_zero(tmp_path, db_url, demo, capsys, monkeypatch) -> None:
    from bot.config import load_config

    script = (EXAMPLES / "quickstart.txt").read_text(encoding="utf-8")
    script = script.replace("127.0.0.1:8701", f"127.0.0.1:{demo.ports['production']}")
    path = tmp_path / "quickstart.txt"
    path.write_text(script, encoding="utf-8")
    monkeypatch.setenv("DEMO_STEP_DELAY", "0")
    monkeypatch.chdir(tmp_path)  # uploads go to ./.state/console-files
    config = load_config(write_config(tmp_path, db_url, demo), environ={})
    args = argparse.Namespace(user=None, script=str(path), no_color=True)

    assert await run_console(config, args) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out
    answers = re.findall(r"HTTP 200 · \S+/version\n  (\S+)", out)
    assert answers == ["1.0", "2.0", "1.0"]


async def test_an_unreadable_line_makes_the_exit_status_non_zero(tmp_path, db_url, demo, capsys) -> None:
    from bot.config import load_config

    path = tmp_path / "bad.txt"
    path.write_text("# a comment\n/deploy help\nno such thing\n", encoding="utf-8")
    config = load_config(write_config(tmp_path, db_url, demo), environ={})
    args = argparse.Namespace(user=None, script=str(path), no_color=True)

    assert await run_console(config, args) == 1
    captured = capsys.readouterr()
    assert "no such thing" in captured.out
    assert t("zh", "console.failures", count=1) in captured.err
