"""Scheduled deploys and freezes in Slack and over REST, against the fake Slack and a real database:
`at`/`in` anywhere before the description (and ordinary words otherwise), the scheduled card with
取消, `/deploy schedule`, bad times refused with nothing created, a freeze refusal."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from bot.config import Freeze
from bot.slack import grammar
from storage.models import Status
from tests.conftest import SCRIPTS
from tests.slackbot_fixtures import action_ids, texts


def test_at_and_in_are_times_only_when_a_time_follows(config):
    parsed = grammar.parse("production --skip-build at 22:00 main fix login", config)
    assert (parsed.branch, parsed.description, parsed.skip_build) == ("main", "fix login", True)
    assert parsed.when.clock == (22, 0)
    parsed = grammar.parse("production main in 10m", config)
    assert parsed.when.seconds == 600 and parsed.description == ""
    parsed = grammar.parse("production main at 2026-12-01 22:00 release", config)
    assert parsed.when.date == (2026, 12, 1) and parsed.description == "release"
    parsed = grammar.parse("production main at lunch time", config)  # no time: ordinary words
    assert parsed.when is None and parsed.description == "at lunch time"


async def test_a_scheduled_deploy_has_its_card_and_is_listed(start_bot) -> None:
    bot = await start_bot(
        environments={"production": {"label": "生产环境", "script": str(SCRIPTS / "steps.sh")}}
    )
    await bot.command("/deploy production main in 2h 夜间发布")
    deploy = await bot.deploy(1)
    assert deploy.state is Status.SCHEDULED and deploy.description == "夜间发布"
    await bot.wait_for(lambda: bot.has_card(deploy.id))
    card = bot.card(deploy.id)
    assert "cancel_deploy" in action_ids(card) and "UTC" in texts(card)
    listed = await bot.answer("/deploy schedule")
    assert f"#{deploy.id}" in texts(listed)

    refused = await bot.answer("/deploy production main in 0s")
    assert "in 10m" in texts(refused)
    refused = await bot.answer("/deploy production main at 25:00")
    assert "25:00" in texts(refused)
    assert (await bot.service.history()).total == 1, "bad times created nothing"


async def test_a_freeze_refuses_a_slash_command(start_bot) -> None:
    bot = await start_bot(
        environments={"production": {"label": "生产环境", "script": str(SCRIPTS / "steps.sh")}}
    )
    start = datetime.now(UTC) - timedelta(hours=1)
    window = Freeze(start=start, end=start + timedelta(hours=2), reason="春节封网")
    bot.server.runtime.service.config = dataclasses.replace(bot.config, freezes=(window,))
    bot.server.runtime.service.rules.config = bot.server.runtime.service.config
    answer = await bot.answer("/deploy production main")
    assert "春节封网" in texts(answer)
    assert "生产环境 处于封网期" in texts(answer)
    assert (await bot.service.history()).total == 0
