"""End to end over Slack's HTTP endpoint: /deploy, the modal, the card and its thread, refusals.

Each test starts the real server (bot/app/server.py) on a loopback port with its Web API pointed at a
FakeSlack, sends signed requests, and asserts on the Web API calls the fake received.
"""

from __future__ import annotations

from bot.i18n import t
from storage.models import Status
from tests.conftest import SCRIPTS
from tests.slackbot_fixtures import ADMIN, CHANNEL, GUEST, action_ids, texts


async def test_deploy_command_posts_one_card_updates_it_and_threads_every_step(bot) -> None:
    reply = await bot.command("/deploy production main")
    assert reply.status == 200

    deploy = await bot.finished()
    assert deploy.state is Status.SUCCESS
    assert deploy.slack_channel == CHANNEL and deploy.request_key.startswith("slack:")
    card = bot.card(deploy.id)
    assert card["ts"] == deploy.slack_ts  # remembered with the deploy

    top_level = [c for c in bot.calls("chat.postMessage") if not c.params.get("thread_ts")]
    assert len(top_level) == 1, "one channel message per deploy"
    updates = bot.calls("chat.update")
    assert updates and {u.params["ts"] for u in updates} == {deploy.slack_ts}
    assert len(updates) < 7, "card updates are coalesced, not one per step"
    assert "cancel_deploy" not in action_ids(card) and "view_logs" in action_ids(card)

    replies = bot.thread_replies(deploy.id)
    assert len(replies) == 8, "one reply per step plus the final reply"
    for number, step_reply in enumerate(replies[:7], start=1):
        assert f"{number}/7" in texts(step_reply)
    assert f"<@{ADMIN}>" in texts(replies[-1])
    assert bot.calls("files.completeUploadExternal") == [], "the log is attached only when it fails"


async def test_failed_deploy_thread_has_the_error_the_tail_and_the_whole_log(start_bot) -> None:
    bot = await start_bot(environments={"production": {"script": str(SCRIPTS / "fail.sh")}})
    await bot.command("/deploy production")
    deploy = await bot.finished()
    assert deploy.state is Status.FAILED

    card = bot.card(deploy.id)
    assert "compiler exploded" in texts(card)
    final = bot.thread_replies(deploy.id)[-2]  # the uploaded log comes last
    assert f"<@{ADMIN}>" in texts(final) and "cleaning up" in texts(final)
    completed = bot.calls("files.completeUploadExternal")
    assert len(completed) == 1 and completed[0].params["thread_ts"] == deploy.slack_ts
    (uploaded,) = [f for f in bot.fake.files.values() if f.complete]
    assert b"ERROR: compiler exploded" in uploaded.data and b"[1/2] build" in uploaded.data


async def test_modal_submission_passes_skip_flags_to_the_script(bot) -> None:
    await bot.command("/deploy")
    (opened,) = bot.calls("views.open")
    modal = opened.response["view"]
    assert modal["callback_id"] == "deploy_modal"

    reply = await bot.submit(
        {"env": "staging", "branch": "main", "options": ["skip_build", "skip_migrations"]}, view=modal
    )
    assert reply.status == 200 and not reply.body  # the modal closes

    deploy = await bot.finished()
    assert (deploy.environment, deploy.skip_build, deploy.skip_migrations) == ("staging", True, True)
    log = (await bot.service.logs(deploy.id)).text
    assert "skip_build=1 skip_migrations=1" in log
    assert bot.card(deploy.id)["channel"] == CHANNEL  # posted where /deploy was typed

    # the same modal submitted again (a double submit) does not start a second deploy
    await bot.submit({"env": "staging", "branch": "main"}, view=modal)
    await bot.settle()
    assert (await bot.service.history()).total == 1


async def test_choosing_another_environment_in_the_modal_brings_its_default_branch(start_bot) -> None:
    steps = str(SCRIPTS / "steps.sh")
    bot = await start_bot(
        environments={
            "production": {"script": steps},
            "staging": {"script": steps, "default_branch": "develop"},
        }
    )
    await bot.command("/deploy")
    (opened,) = bot.calls("views.open")
    modal = opened.response["view"]
    await bot.click("env_select", view=modal, selected="staging")
    await bot.wait_for(lambda: bot.calls("views.update"))
    (updated,) = bot.calls("views.update")
    assert updated.params["view_id"] == modal["id"] and updated.params["hash"] == modal["hash"]
    view = updated.response["view"]
    env, branch = view["blocks"][0]["element"], view["blocks"][1]["element"]
    assert env["initial_option"]["value"] == "staging"
    assert (branch["action_id"], branch["initial_value"]) == ("branch_input:staging", "develop")
    assert view["private_metadata"] == modal["private_metadata"]  # the card still goes to the channel

    await bot.submit({"env": "staging"}, view=view)  # the branch left as shown
    deploy = await bot.finished()
    assert (deploy.environment, deploy.branch) == ("staging", "develop")


async def test_modal_errors_point_at_the_field_and_write_nothing(bot) -> None:
    await bot.command("/deploy")
    modal = bot.calls("views.open")[0].response["view"]

    reply = await bot.submit({"branch": "feature..x"}, view=modal)
    body = reply.json()
    assert body["response_action"] == "errors" and list(body["errors"]) == ["branch"]
    assert "feature..x" in body["errors"]["branch"]

    reply = await bot.submit({"branch": "main", "description": "x" * 2001}, view=modal)
    assert list(reply.json()["errors"]) == ["description"]
    assert (await bot.service.history()).total == 0

    # fixing the field and submitting the same modal again works
    await bot.submit({"branch": "main"}, view=modal)
    assert (await bot.finished()).state is Status.SUCCESS


async def test_usage_errors_say_what_was_wrong_and_show_the_usage(bot) -> None:
    reply = await bot.command("/deploy moon main")
    body = reply.json()
    assert body["response_type"] == "ephemeral"
    assert "moon" in texts(body) and "/deploy history [env] [status] [page]" in texts(body)

    reply = await bot.command("/deploy logs abc")
    assert "abc" in texts(reply.json()) and "/deploy logs <id>" in texts(reply.json())

    reply = await bot.command("/deploy production bad..branch")
    assert "bad..branch" in texts(reply.json())
    assert (await bot.service.history()).total == 0


async def test_help_lists_every_form(bot) -> None:
    body = (await bot.command("/deploy help")).json()
    assert body["response_type"] == "ephemeral"
    for syntax in ("/deploy history", "/deploy status", "/deploy cancel", "/deploy rollback"):
        assert syntax in texts(body)
    assert t("zh", "cmd.help.cancel") in texts(body)


async def test_english_locale(start_bot) -> None:
    bot = await start_bot(bot={"locale": "en"})
    body = (await bot.command("/deploy cancel 99")).json()
    assert body is None or "response_type" not in body  # acked at once, answered by response_url
    await bot.wait_for(lambda: bot.fake.ephemerals(ADMIN))
    assert bot.fake.ephemerals(ADMIN)[-1]["text"] == t("en", "error.deploy_not_found", deploy_id=99)


async def test_non_admin_is_refused_and_nothing_is_written(bot) -> None:
    reply = await bot.command("/deploy production main", user=GUEST)
    assert reply.json()["response_type"] == "ephemeral"
    assert t("zh", "error.not_admin") in texts(reply.json())

    await bot.command("/deploy", user=GUEST)
    assert bot.calls("views.open") == []

    # a modal opened by an admin and submitted by someone else is refused too
    await bot.command("/deploy")
    modal = bot.calls("views.open")[0].response["view"]
    body = (await bot.submit({"branch": "main"}, view=modal, user=GUEST)).json()
    assert body["response_action"] == "errors"

    await bot.settle()
    assert (await bot.service.history()).total == 0
    assert bot.calls("chat.postMessage") == []


async def test_a_redelivered_command_starts_one_deploy(bot) -> None:
    body = bot.slack.command_body("production main", user=ADMIN, channel=CHANNEL)
    first = await bot.slack.post(body)
    second = await bot.slack.post(body)
    assert first.status == second.status == 200
    await bot.finished()
    assert (await bot.service.history()).total == 1
    top_level = [c for c in bot.calls("chat.postMessage") if not c.params.get("thread_ts")]
    assert len(top_level) == 1


async def test_a_bad_signature_is_rejected(start_bot) -> None:
    bot = await start_bot(secret="not-the-signing-secret")
    reply = await bot.command("/deploy production main")
    assert reply.status == 401
    assert (await bot.service.history()).total == 0


async def test_a_stale_timestamp_is_rejected(bot) -> None:
    body = bot.slack.command_body("production", user=ADMIN, channel=CHANNEL)
    reply = await bot.slack.post(body, timestamp=1531420618)  # signed, but years ago
    assert reply.status == 401
    assert (await bot.service.history()).total == 0


async def test_bot_not_in_channel_tells_the_user_and_still_deploys(bot) -> None:
    bot.fake.add_channel("C0PRIVATE", "secret-project", member=False)
    await bot.command("/deploy production main", channel="C0PRIVATE")
    deploy = await bot.finished()
    assert deploy.state is Status.SUCCESS

    await bot.wait_for(lambda: bot.fake.ephemerals(ADMIN))
    told = bot.fake.ephemerals(ADMIN)[-1]["text"]
    assert "not_in_channel" in told and "/invite" in told and f"#{deploy.id}" in told

    # from the modal there is no response_url: the user hears it in the app's DM instead
    await bot.command("/deploy", channel="C0PRIVATE")
    await bot.submit({"env": "staging"}, view=bot.calls("views.open")[0].response["view"])
    second = await bot.finished(2)
    assert second.state is Status.SUCCESS
    dm = "D" + ADMIN[1:]
    await bot.wait_for(lambda: any(channel == dm for channel, _ in bot.fake.messages))
    (told,) = [m["text"] for (channel, _), m in bot.fake.messages.items() if channel == dm]
    assert "/invite" in told and f"#{second.id}" in told


async def test_status_shows_the_card_of_one_deploy_or_each_environment(bot) -> None:
    await bot.command("/deploy production main")
    deploy = await bot.finished()

    body = await bot.answer(f"/deploy status #{deploy.id}")
    assert body["response_type"] == "ephemeral"
    assert f"deploy_{deploy.id}_summary" in {b.get("block_id") for b in body["blocks"]}

    body = await bot.answer("/deploy status")
    assert f"deploy_{deploy.id}_summary" in {b.get("block_id") for b in body["blocks"]}

    # answered after the ack: an unknown id still reaches the user, in their language
    body = await bot.answer("/deploy status 4242")
    assert body["text"] == t("zh", "error.deploy_not_found", deploy_id=4242)
