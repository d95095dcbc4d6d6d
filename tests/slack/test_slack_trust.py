"""The small holes in the Slack surface, each closed: requests without a user, response_urls that
point outside Slack, markup in error text, App Home for former admins, and the card's end shown no
later than the reply that announces it."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from bot.slack.client import is_slack_url
from storage.models import Status
from tests.slackbot_fixtures import ADMIN, CHANNEL, texts


async def test_a_request_without_a_user_id_is_refused_and_runs_nothing(bot) -> None:
    form = dict(parse_qsl(bot.slack.command_body("production main", user=ADMIN, channel=CHANNEL).decode()))
    del form["user_id"]
    reply = await bot.slack.post(urlencode(form).encode())
    assert reply.status == 200 and not reply.body
    await bot.settle()
    assert (await bot.service.history()).total == 0
    assert bot.calls("chat.postMessage") == []
    assert not any(bot.fake.responses.values()), "nothing answered through the response_url"


async def test_a_response_url_outside_slack_is_never_answered(bot) -> None:
    await bot.command("/deploy production main")
    deploy = await bot.finished()
    sent_before = len(bot.calls("chat.postMessage"))
    evil = "https://collector.example.net/hook"
    await bot.click("cancel_deploy", str(deploy.id), message=bot.card(deploy.id), response_url=evil)
    await bot.settle()
    assert evil not in bot.fake.responses
    dm = bot.calls("chat.postMessage")[sent_before:]
    assert [c.params["channel"] for c in dm] == [ADMIN], "the refusal goes to the user's DM instead"
    assert f"#{deploy.id}" in dm[0].params["text"]


def test_only_slack_hosts_and_the_configured_api_host_take_answers() -> None:
    api = "http://127.0.0.1:8999/api/"
    assert is_slack_url("https://hooks.slack.com/commands/T1/2/x", "https://slack.com/api/")
    assert is_slack_url("https://hooks.slack-gov.com/actions/T1/2/x", "https://slack.com/api/")
    assert is_slack_url("http://127.0.0.1:8999/response/abc", api)
    for url in (
        "http://hooks.slack.com/commands/x",  # not TLS
        "https://hooks.slack.com.evil.example/x",
        "https://evilslack.com/x",
        "http://127.0.0.2:8999/response/abc",
        "file:///etc/passwd",
        "",
        None,
    ):
        assert not is_slack_url(url, api), url


async def test_markup_in_an_error_stays_text(bot) -> None:
    for text in ("/deploy <https://phish.example|点这里>", "/deploy history <@U0OPS0002>"):
        shown = texts(await bot.answer(text))
        assert "&lt;" in shown, shown
        assert "<https://phish.example" not in shown and "<@U0OPS0002>" not in shown, shown


async def test_app_home_stops_for_someone_no_longer_admin(start_bot) -> None:
    bot = await start_bot(bot={"admins": [], "admin_groups": ["S0DEPLOYRS"]})
    bot.fake.set_group("S0DEPLOYRS", [ADMIN, "U0OPS0002"])
    await bot.home_opened(ADMIN)
    await bot.wait_for(lambda: bot.calls("views.publish"))
    bot.fake.set_group("S0DEPLOYRS", ["U0OPS0002"])  # ADMIN leaves the group
    bot.server.slack.admins._fetched_at = None  # as if the membership cache had expired
    published = len(bot.calls("views.publish"))
    await bot.command("/deploy production main", user="U0OPS0002")
    await bot.settle()
    assert len(bot.calls("views.publish")) == published


async def test_the_card_shows_the_end_before_the_reply_that_announces_it(bot) -> None:
    await bot.command("/deploy production main")
    deploy = await bot.finished()
    assert deploy.state is Status.SUCCESS
    card_ts = bot.card(deploy.id)["ts"]
    final_update = max(
        i
        for i, c in enumerate(bot.fake.calls)
        if c.method == "chat.update" and c.params.get("ts") == card_ts and "部署成功" in c.params["text"]
    )
    mention = next(
        i
        for i, c in enumerate(bot.fake.calls)
        if c.method == "chat.postMessage"
        and c.params.get("thread_ts") == card_ts
        and f"<@{ADMIN}>" in c.params["text"]
    )
    assert final_update < mention
