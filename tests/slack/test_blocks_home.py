"""App Home (bot/slack/blocks/home.py): environments, the 一键部署 button, recent deploys."""

from __future__ import annotations

from datetime import timedelta

from bot.i18n import t
from bot.slack.blocks.home import EnvHome, home_view
from tests.blockkit import validate_view
from tests.slack.blocks_fixtures import (
    T0,
    block,
    buttons,
    deploy,
    running,
    target,
    text_of,
)


def test_app_home(cfg) -> None:
    envs = [
        EnvHome(env=cfg.environments["production"], live=deploy(), running=running(), estimate=None),
        EnvHome(
            env=cfg.environments["staging"],
            live=None,
            running=running(id=50, environment="staging", step_current=None, step_total=None),
            estimate=300,
        ),
        EnvHome(env=cfg.environments["testing"], live=None, running=None),
    ]
    view = home_view(envs, [running(), deploy(), target()], "zh", now=T0 + timedelta(seconds=75))
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
    envs = [EnvHome(base.model_copy(update={"name": f"env{i}"}), None, None) for i in range(150)]
    view = home_view(envs, [], "en", now=T0)
    validate_view(view)
    assert t("en", "ui.home.no_recent") in text_of(view, "home_recent_1")
