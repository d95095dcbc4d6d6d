"""The deploy queue in Slack, over the real HTTP endpoint against the fake Slack: the 排队 button on
a busy refusal (pressed twice, by two people: one queued deploy), the queued card with its position
and 取消排队, the same card taken over when the deploy starts, flags anywhere, and /deploy audit."""

from __future__ import annotations

import asyncio
import json

from bot.i18n import t
from storage.models import Status
from tests.engine.test_queue import BY_BRANCH
from tests.engine.test_service import script
from tests.slackbot_fixtures import ADMIN, action_ids, texts

OTHER_ADMIN = "U0OPS0002"


async def busy_bot(start_bot, tmp_path, **env):
    """A bot whose production deploy `slow` holds the environment until cancelled."""
    production = {"label": "生产环境", "script": script(tmp_path, "by_branch.sh", BY_BRANCH), **env}
    bot = await start_bot(
        environments={"production": production}, bot={"admins": [ADMIN, OTHER_ADMIN], "managers": [ADMIN]}
    )
    await bot.command("/deploy production slow")
    holder = await bot.deploy(1)
    await bot.wait_for(lambda: bot.has_card(holder.id))
    return bot, holder


async def listeners_done(bot) -> None:
    """The listeners' work after their acks is done (`bot.settle` would also wait for the holder)."""
    async with asyncio.timeout(30):
        while bot.server.slack.context.tasks:
            await asyncio.sleep(0.02)


def button(message: dict, action_id: str) -> dict:
    return next(
        element
        for block in message["blocks"]
        for element in block.get("elements") or []
        if element.get("action_id") == action_id
    )


async def test_the_queue_button_queues_the_same_deploy_once(start_bot, tmp_path) -> None:
    bot, holder = await busy_bot(start_bot, tmp_path)
    refusal = await bot.answer("/deploy production --skip-build next ship   it")
    assert "queue_deploy" in action_ids(refusal)
    assert f"#{holder.id}" in texts(refusal)
    offer = json.loads(button(refusal, "queue_deploy")["value"])
    assert (offer["branch"], offer["skip_build"], offer["description"]) == ("next", True, "ship   it")
    assert (await bot.service.history()).total == 1, "the refusal wrote nothing"

    message = {"blocks": refusal["blocks"]}
    for user in (ADMIN, ADMIN, OTHER_ADMIN):  # a double click, and a colleague pressing it too
        await bot.click(
            "queue_deploy",
            button(refusal, "queue_deploy")["value"],
            message=message,
            ephemeral=True,
            user=user,
        )
    await listeners_done(bot)
    page = await bot.service.history()
    assert page.total == 2, "queued once"
    queued = await bot.deploy(2)
    assert (queued.state, queued.branch, queued.skip_build, queued.description) == (
        Status.QUEUED,
        "next",
        True,
        "ship   it",
    )
    # whichever click's listener ran first queued it; the others found it by its key
    assert queued.deployed_by in (ADMIN, OTHER_ADMIN)
    answer = t("zh", "cmd.queued", env="生产环境", deploy_id=queued.id, position=1)
    assert answer in [e["text"] for e in bot.fake.ephemerals(queued.deployed_by)]

    card = bot.card(queued.id)
    assert t("zh", "status.queued") in texts(card)
    assert t("zh", "ui.progress.queued", position=1) in texts(card)
    assert action_ids(card) == {"cancel_queued"}

    await bot.service.cancel(holder.id, user=ADMIN)  # the holder ends: the queued deploy starts
    done = await bot.finished(2)
    assert done.state is Status.SUCCESS
    assert bot.card(queued.id)["ts"] == card["ts"], "the same message shows it running, then done"
    assert t("zh", "status.success") in texts(bot.card(queued.id))
    assert "cancel_queued" not in action_ids(bot.card(queued.id))


async def test_a_queued_deploy_leaves_the_queue_with_its_button(start_bot, tmp_path) -> None:
    bot, holder = await busy_bot(start_bot, tmp_path)
    await bot.command("/deploy production --queue later")  # a flag before the branch
    queued = await bot.deploy(2)
    assert (queued.state, queued.branch) == (Status.QUEUED, "later")
    await bot.wait_for(lambda: bot.has_card(queued.id) and "cancel_queued" in action_ids(bot.card(queued.id)))

    status = await bot.answer(f"/deploy status {queued.id}")
    assert t("zh", "ui.progress.queued", position=1) in texts(status)

    # someone else's queued deploy, and not a manager: refused, it stays queued
    await bot.click("cancel_queued", str(queued.id), message=bot.card(queued.id), user=OTHER_ADMIN)
    await listeners_done(bot)
    assert (await bot.service.get(queued.id)).state is Status.QUEUED

    await bot.click("cancel_queued", str(queued.id), message=bot.card(queued.id))
    await bot.wait_for(
        lambda: (
            t("zh", "cmd.queue_cancelled", deploy_id=queued.id)
            in [e["text"] for e in bot.fake.ephemerals(ADMIN)]
        )
    )
    await bot.wait_for(lambda: t("zh", "status.cancelled") in texts(bot.card(queued.id)))
    assert (await bot.service.get(queued.id)).state is Status.CANCELLED
    assert (await bot.service.get(holder.id)).state is Status.RUNNING
    await bot.service.cancel(holder.id, user=ADMIN)
    await bot.finished(1)


async def test_force_and_flags_anywhere_reach_the_service(start_bot, tmp_path) -> None:
    production = {"script": script(tmp_path, "by_branch.sh", BY_BRANCH), "allowed_branches": ["main"]}
    bot = await start_bot(environments={"production": production}, bot={"managers": [ADMIN]})
    refusal = await bot.answer("/deploy production hotfix")
    assert "hotfix" in texts(refusal) and "main" in texts(refusal)
    await bot.command("/deploy production --force INC-7 hotfix --skip-migrations urgent fix")
    deploy = await bot.finished()
    assert (deploy.state, deploy.branch, deploy.forced_by, deploy.force_reason) == (
        Status.SUCCESS,
        "hotfix",
        ADMIN,
        "INC-7",
    )
    assert deploy.skip_migrations and deploy.description == "urgent fix"
    assert "INC-7" in texts(bot.card(deploy.id))

    usage = await bot.answer("/deploy production main --force")
    assert t("zh", "cmd.error.force_reason") in texts(usage)
    assert (await bot.service.history()).total == 1

    trail = await bot.answer("/deploy audit production")
    shown = texts(trail)
    assert t("zh", "audit.action.force") in shown and "INC-7" in shown
    assert t("zh", "audit.action.refused") in shown and "branch hotfix" in shown
    assert shown.index(t("zh", "audit.action.force")) < shown.index(t("zh", "audit.action.refused")), (
        "newest first"
    )


SLOW_FAIL = """echo "[1/1] $DEPLOY_BRANCH"
if [ "$DEPLOY_BRANCH" = "doomed" ]; then sleep 1.5; echo "ERROR: broken" >&2; exit 3; fi
echo "deployed $DEPLOY_BRANCH"
"""


async def test_the_card_after_a_failed_deploy_says_the_queue_went_on(start_bot, tmp_path) -> None:
    production = {"label": "生产环境", "script": script(tmp_path, "slow_fail.sh", SLOW_FAIL)}
    bot = await start_bot(environments={"production": production})
    await bot.command("/deploy production doomed")
    doomed = await bot.deploy(1)
    await bot.command("/deploy production main --queue")
    queued = await bot.deploy(2)
    assert queued.state is Status.QUEUED
    done = await bot.finished(2)
    assert done.state is Status.SUCCESS
    assert (await bot.service.get(doomed.id)).state is Status.FAILED
    note = t("zh", "ui.card.failed_ahead", deploy_id=doomed.id)
    await bot.wait_for(lambda: note in texts(bot.card(queued.id)))
    assert note not in texts(bot.card(doomed.id))
