"""App Home over Slack's HTTP endpoint: published on open, republished as deploys change."""

from __future__ import annotations

from bot.console.payloads import app_home_opened_event
from bot.i18n import t
from storage.models import Status
from tests.slackbot_fixtures import ADMIN, GUEST, action_ids, texts


def publishes(bot, user: str) -> list:
    return [c for c in bot.calls("views.publish") if c.params.get("user_id") == user]


async def test_home_is_published_for_admins_and_follows_deploys(bot) -> None:
    await bot.home_opened(ADMIN)
    await bot.wait_for(lambda: publishes(bot, ADMIN))
    home = bot.fake.home(ADMIN)
    assert home["type"] == "home" and "生产环境" in texts(home) and "预发布环境" in texts(home)
    assert "open_deploy_modal" in action_ids(home)

    await bot.command("/deploy production main")
    deploy = await bot.finished()
    await bot.wait_for(lambda: f"#{deploy.id}" in texts(bot.fake.home(ADMIN)))
    assert len(publishes(bot, ADMIN)) >= 2


async def test_home_refuses_non_admins(bot) -> None:
    await bot.home_opened(GUEST)
    await bot.wait_for(lambda: publishes(bot, GUEST))
    home = bot.fake.home(GUEST)
    assert t("zh", "error.not_admin") in texts(home) and not action_ids(home)

    await bot.command("/deploy production main")
    await bot.finished()
    assert len(publishes(bot, GUEST)) == 1, "nothing is republished for them"


async def test_a_redelivered_event_is_handled_once(bot) -> None:
    event = app_home_opened_event(ADMIN, "D0DEPLOYA1")
    await bot.slack.event(event, event_id="Ev0HOME0001")
    await bot.slack.event(event, event_id="Ev0HOME0001", retry_num=1)
    await bot.wait_for(lambda: publishes(bot, ADMIN))
    await bot.settle()
    assert len(publishes(bot, ADMIN)) == 1


async def test_deploy_from_home_goes_to_the_app_dm(bot) -> None:
    await bot.home_opened(ADMIN)
    await bot.wait_for(lambda: bot.fake.home(ADMIN))
    await bot.click("open_deploy_modal", view=bot.fake.home(ADMIN))
    await bot.wait_for(lambda: bot.calls("views.open"))
    modal = bot.fake.last_view()
    assert modal["callback_id"] == "deploy_modal"

    await bot.submit({"env": "staging"}, view=modal)
    deploy = await bot.finished()
    assert deploy.state is Status.SUCCESS
    assert bot.card(deploy.id)["channel"] == "D" + ADMIN[1:]


async def test_home_history_opens_a_modal_with_filters(bot) -> None:
    await bot.command("/deploy production main")
    production = await bot.finished()
    await bot.command("/deploy staging main")
    staging = await bot.finished(2)

    await bot.home_opened(ADMIN)
    await bot.wait_for(lambda: bot.fake.home(ADMIN))
    await bot.click("home_open_history", "production", view=bot.fake.home(ADMIN))
    await bot.wait_for(lambda: bot.calls("views.open"))
    modal = bot.fake.last_view()
    assert f"#{production.id}" in texts(modal) and f"#{staging.id}" not in texts(modal)

    await bot.click("history_env", view=modal, selected="all")
    await bot.wait_for(lambda: bot.calls("views.update"))
    assert f"#{staging.id}" in texts(bot.fake.last_view())
