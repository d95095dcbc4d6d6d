"""Approvals in Slack, over the real HTTP endpoint against the fake Slack: the card of a deploy that
waits shows who must approve, what would change and 批准 / 拒绝; each approver gets a DM with the
same; the requester's own click is refused, another approver's starts it; a second click and a
click after a rejection are refused and change nothing."""

from __future__ import annotations

from bot.i18n import t
from storage.models import Status
from tests.conftest import SCRIPTS
from tests.slackbot_fixtures import ADMIN, action_ids, texts

APPROVER = "U0APPROVE1"


async def approval_bot(start_bot, git_repo=None):
    production = {
        "label": "生产环境",
        "script": str(SCRIPTS / "steps.sh"),
        "approval": "required",
        "approvers": [APPROVER, ADMIN],
    }
    if git_repo is not None:
        production["repo"] = str(git_repo.path)
    return await start_bot(environments={"production": production}, bot={"admins": [ADMIN, APPROVER]})


async def test_the_card_and_the_dm_ask_for_approval_and_a_click_starts_it(start_bot) -> None:
    bot = await approval_bot(start_bot)
    await bot.command("/deploy production main")
    deploy = await bot.deploy(1)
    assert deploy.state is Status.AWAITING_APPROVAL
    await bot.wait_for(lambda: bot.has_card(deploy.id))
    card = bot.card(deploy.id)
    assert {"approve_deploy", "reject_deploy"} <= action_ids(card)
    assert t("zh", "status.awaiting_approval") in texts(card)
    # the other approver is asked in a DM; the requester is not
    await bot.wait_for(
        lambda: any(c.params.get("channel") == APPROVER for c in bot.calls("chat.postMessage"))
    )
    dms = [c.params for c in bot.calls("chat.postMessage") if c.params.get("channel") in (APPROVER, ADMIN)]
    assert [dm["channel"] for dm in dms] == [APPROVER]
    assert "approve_deploy" in action_ids(dms[0])

    await bot.click("approve_deploy", str(deploy.id), user=ADMIN)  # the requester's own: refused
    await bot.wait_for(lambda: bot.fake.ephemerals(ADMIN))
    assert t("zh", "error.self_approval", deploy_id=deploy.id) in texts(bot.fake.ephemerals(ADMIN)[-1])
    assert (await bot.service.get(deploy.id)).state is Status.AWAITING_APPROVAL

    await bot.click("approve_deploy", str(deploy.id), user=APPROVER)
    done = await bot.finished(1)
    assert done.state is Status.SUCCESS and done.approved_by == APPROVER
    assert "approve_deploy" not in action_ids(bot.card(deploy.id))

    await bot.click("reject_deploy", str(deploy.id), user=APPROVER)  # too late now
    await bot.wait_for(lambda: len(bot.fake.ephemerals(APPROVER)) >= 2)
    assert f"#{deploy.id}" in texts(bot.fake.ephemerals(APPROVER)[-1])
    assert (await bot.service.get(deploy.id)).state is Status.SUCCESS


async def test_a_rejection_ends_it_and_the_card_says_who(start_bot) -> None:
    bot = await approval_bot(start_bot)
    await bot.command("/deploy production main")
    deploy = await bot.deploy(1)
    await bot.wait_for(lambda: bot.has_card(deploy.id))
    await bot.click("reject_deploy", str(deploy.id), user=APPROVER)
    done = await bot.finished(1)
    assert done.state is Status.CANCELLED and done.started_at is None
    await bot.wait_for(lambda: "approve_deploy" not in action_ids(bot.card(deploy.id)))
    assert t("zh", "status.cancelled") in texts(bot.card(deploy.id))


async def test_the_request_shows_what_would_change(start_bot, git_repo) -> None:
    bot = await approval_bot(start_bot, git_repo)
    # the live version: a first deploy, approved
    await bot.command(f"/deploy production {git_repo.first}")
    first = await bot.deploy(1)
    await bot.click("approve_deploy", str(first.id), user=APPROVER)
    await bot.finished(1)
    newer = git_repo.commit("fix the login page")
    await bot.command("/deploy production main")
    second = await bot.deploy(2)
    await bot.wait_for(lambda: bot.has_card(second.id) and "fix the login page" in texts(bot.card(second.id)))
    text = texts(bot.card(second.id))
    assert newer[:7] in text and "second" in text
    assert t("zh", "ui.changes.forwards", count=2) in text


async def test_without_named_approvers_the_admins_are_asked(start_bot) -> None:
    production = {"label": "生产环境", "script": str(SCRIPTS / "steps.sh"), "approval": "required"}
    bot = await start_bot(environments={"production": production}, bot={"admins": [ADMIN, APPROVER]})
    await bot.command("/deploy production main")
    await bot.wait_for(
        lambda: any(c.params.get("channel") == APPROVER for c in bot.calls("chat.postMessage"))
    )
    assert not any(c.params.get("channel") == ADMIN for c in bot.calls("chat.postMessage"))
    deploy = await bot.deploy(1)
    await bot.click("approve_deploy", str(deploy.id), user=APPROVER)
    assert (await bot.finished(1)).approved_by == APPROVER
