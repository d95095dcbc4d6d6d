"""Buttons, menus and modals over Slack's HTTP endpoint: cancel, rollback, logs, history."""

from __future__ import annotations

import re

from bot.i18n import t
from storage.models import Status
from tests.conftest import SCRIPTS
from tests.slackbot_fixtures import ADMIN, GUEST, action_ids, texts

OTHER_ADMIN = "U0OPS0002"


def first_posted_card(bot, deploy_id: int) -> dict:
    """The card as first posted (what a user who scrolled up still sees and can click)."""
    ts = bot.card(deploy_id)["ts"]
    posted = next(
        c
        for c in bot.calls("chat.postMessage")
        if c.ok and c.response["ts"] == ts and not c.params.get("thread_ts")
    )
    return {"ts": ts, "blocks": posted.params["blocks"], "text": posted.params["text"]}


def shows(text: str, deploy_id: int) -> bool:
    return re.search(rf"#{deploy_id}\b", text) is not None


async def test_cancel_button_stops_the_deploy_and_the_card_says_who(start_bot) -> None:
    bot = await start_bot(step_sleep="1")
    await bot.command("/deploy production main")
    deploy = await bot.deploy()
    await bot.wait_for(lambda: bot.has_card(deploy.id) and "cancel_deploy" in action_ids(bot.card(deploy.id)))

    await bot.click("cancel_deploy", str(deploy.id), message=bot.card(deploy.id))
    deploy = await bot.finished()
    assert deploy.state is Status.CANCELLED and deploy.cancelled_by == ADMIN

    card = bot.card(deploy.id)
    assert "cancel_deploy" not in action_ids(card)
    assert ADMIN in texts(card), "the card shows who cancelled"
    assert t("zh", "cmd.cancel_requested", deploy_id=deploy.id) in [
        e["text"] for e in bot.fake.ephemerals(ADMIN)
    ]


async def test_stale_cancel_button_gets_a_clear_answer(bot) -> None:
    await bot.command("/deploy production main")
    deploy = await bot.finished()
    old_card = first_posted_card(bot, deploy.id)
    assert "cancel_deploy" in action_ids(old_card)

    await bot.click("cancel_deploy", str(deploy.id), message=old_card)
    await bot.settle()
    answer = bot.fake.ephemerals(ADMIN)[-1]["text"]
    assert answer == t("zh", "error.deploy_finished", deploy_id=deploy.id, status=t("zh", "status.success"))
    assert (await bot.service.get(deploy.id)).state is Status.SUCCESS


async def test_guest_clicks_are_refused_and_change_nothing(start_bot) -> None:
    bot = await start_bot(step_sleep="0.1")
    await bot.command("/deploy production main")
    deploy = await bot.deploy()
    await bot.wait_for(lambda: bot.has_card(deploy.id))

    await bot.click("cancel_deploy", str(deploy.id), message=bot.card(deploy.id), user=GUEST)
    await bot.wait_for(lambda: bot.fake.ephemerals(GUEST))
    assert bot.fake.ephemerals(GUEST)[-1]["text"] == t("zh", "error.not_admin")
    assert (await bot.finished()).state is Status.SUCCESS


async def test_rollback_button_restores_the_version_before_and_posts_its_own_card(
    start_bot, git_repo
) -> None:
    env = {"label": "生产环境", "script": str(SCRIPTS / "steps.sh"), "repo": str(git_repo.path)}
    bot = await start_bot(environments={"production": env})
    await bot.command("/deploy production old")
    first = await bot.finished(1)
    await bot.command("/deploy production main")
    second = await bot.finished(2)
    assert (first.commit_hash, second.commit_hash) == (git_repo.first, git_repo.second)
    assert "rollback" not in action_ids(bot.card(first.id)), "nothing earlier to roll back to"

    card = bot.card(second.id)
    assert "rollback" in action_ids(card)
    await bot.click("rollback", str(second.id), message=card)
    await bot.click("rollback", str(second.id), message=card)  # a double click
    await bot.settle()
    (opened,) = bot.calls("views.open")
    modal = opened.response["view"]
    assert modal["callback_id"] == "rollback_modal"
    assert shows(texts(modal), first.id) and first.short_commit in texts(modal)
    # what it would change: the commit it takes away from the live version
    assert t("zh", "ui.changes.backwards", count=1) in texts(modal) and "second" in texts(modal)

    await bot.submit({"reason": "checkout is broken"}, view=modal)
    await bot.submit({"reason": "checkout is broken"}, view=modal)  # a double submit
    rollback = await bot.finished(3)
    assert (await bot.service.history()).total == 3, "one rollback deploy"
    assert rollback.state is Status.SUCCESS
    assert (rollback.rollback_of, rollback.commit_hash) == (first.id, git_repo.first)
    assert rollback.description == "checkout is broken"
    assert f"rollback_of={first.id}" in (await bot.service.logs(rollback.id)).text
    assert bot.has_card(rollback.id), "the rollback has its own card"


async def test_rollback_to_from_history_and_refused_targets(start_bot, git_repo) -> None:
    env = {"label": "生产环境", "script": str(SCRIPTS / "steps.sh"), "repo": str(git_repo.path)}
    bot = await start_bot(environments={"production": env}, bot={"admins": [ADMIN, OTHER_ADMIN]})
    await bot.command("/deploy production main")
    only = await bot.finished()

    body = await bot.answer("/deploy history")
    assert "rollback_to" in action_ids(body)
    await bot.click("rollback_to", str(only.id), message={"blocks": body["blocks"]}, ephemeral=True)
    await bot.wait_for(lambda: bot.calls("views.open"))
    assert bot.fake.last_view()["callback_id"] == "rollback_modal"

    # a version whose commit is gone cannot be restored: the click says why, no modal opens
    git_repo.drop_second()
    await bot.click(
        "rollback_to", str(only.id), message={"blocks": body["blocks"]}, ephemeral=True, user=OTHER_ADMIN
    )
    await bot.settle()
    assert len(bot.calls("views.open")) == 1
    assert only.short_commit in bot.fake.ephemerals(OTHER_ADMIN)[-1]["text"]


async def test_view_logs_opens_the_tail_and_refresh_updates_it(bot) -> None:
    await bot.command("/deploy production main")
    deploy = await bot.finished()

    await bot.click("view_logs", str(deploy.id), message=bot.card(deploy.id))
    await bot.wait_for(lambda: bot.calls("views.open"))
    modal = bot.fake.last_view()
    assert modal["callback_id"] == "deploy_logs" and "step 7" in texts(modal)

    await bot.click("refresh_logs", view=modal)
    await bot.wait_for(lambda: bot.calls("views.update"))
    assert bot.calls("views.update")[-1].ok and bot.calls("views.update")[-1].params["view_id"] == modal["id"]

    await bot.command(f"/deploy logs {deploy.id}")
    await bot.wait_for(lambda: len(bot.calls("views.open")) == 2)


async def test_history_pages_and_filters_in_place(start_bot, tmp_path) -> None:
    quick = tmp_path / "quick.sh"
    quick.write_text("#!/bin/sh\necho done\n")
    quick.chmod(0o755)
    bot = await start_bot(
        environments={"production": {"script": str(quick)}, "staging": {"script": str(quick)}}
    )
    for number in range(11):  # one more than a page
        env = "staging" if number % 3 == 0 else "production"
        started = await bot.service.trigger(env, user=ADMIN, source="cli")
        while not (await bot.service.get(started.id)).state.is_finished:
            await bot.service.wait_idle()

    body = await bot.answer("/deploy history")
    assert body["response_type"] == "ephemeral"
    page_one = texts(body)
    assert shows(page_one, 11) and shows(page_one, 2) and not shows(page_one, 1)
    assert {"history_next", "history_env", "history_status"} <= action_ids(body)

    await bot.click("history_next", message={"blocks": body["blocks"]}, ephemeral=True)
    await bot.wait_for(lambda: bot.fake.responses[bot.slack.last_response_url])
    answer = bot.fake.responses[bot.slack.last_response_url][-1]
    assert answer["replace_original"] is True
    assert shows(texts(answer), 1) and not shows(texts(answer), 2)

    await bot.click("history_env", message={"blocks": answer["blocks"]}, ephemeral=True, selected="staging")
    await bot.wait_for(lambda: bot.fake.responses[bot.slack.last_response_url])
    staging = texts(bot.fake.responses[bot.slack.last_response_url][-1])
    assert all(shows(staging, n) for n in (1, 4, 7, 10))
    assert not any(shows(staging, n) for n in (2, 3, 5, 11))

    body = await bot.answer("/deploy history staging failed")
    assert not any(shows(texts(body), n) for n in range(1, 12))
