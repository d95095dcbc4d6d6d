"""Many deploys into one channel under Slack's rate limits: the fake Slack answers 429 where Slack
would (bot/console/ratelimits.py) and the bot paces itself (bot/slack/outbox.py). Every card ends
final, every final reply comes with its mention, step replies are coalesced instead of queued, and a
429 pauses the whole budget instead of each request retrying into the limit."""

from __future__ import annotations

import asyncio
import itertools
import re

from storage.models import Status
from tests.conftest import SCRIPTS
from tests.slackbot_fixtures import ADMIN, CHANNEL, action_ids, texts

STEPS = str(SCRIPTS / "steps.sh")
MENTION = f"<@{ADMIN}>"


def environments(count: int, script: str = STEPS) -> dict:
    return {f"env{n}": {"script": script} for n in range(count)}


async def deploy_all(bot, count: int) -> list:
    started = await asyncio.gather(
        *(bot.service.trigger(f"env{n}", "main", user=ADMIN, channel=CHANNEL) for n in range(count))
    )
    for number in range(1, count + 1):
        await bot.finished(number)
    return [await bot.service.get(d.id) for d in started]


def writes_card(call, ts: str) -> bool:
    """The call posted the card `ts`, or updated it."""
    if call.method == "chat.update":
        return call.params.get("ts") == ts
    posted = call.method == "chat.postMessage" and not call.params.get("thread_ts")
    return posted and call.response.get("ts") == ts


async def test_ten_deploys_at_once_in_one_channel_end_final_with_every_mention(start_bot) -> None:
    # ten 10-second deploys: their cards alone keep the channel busy for 7 s at one post a second
    bot = await start_bot(environments=environments(10), step_sleep="1.5", rate_limits=True)
    deploys = await deploy_all(bot, 10)
    assert all(d.state is Status.SUCCESS for d in deploys)

    for deploy in deploys:
        card = bot.card(deploy.id)
        assert "cancel_deploy" not in action_ids(card) and "view_logs" in action_ids(card)
        replies = bot.thread_replies(deploy.id)
        assert [MENTION in texts(r) for r in replies].count(True) == 1, "one final reply each"
        assert MENTION in texts(replies[-1])
        shown = texts(replies)
        assert all(f"[{n}/7]" in shown for n in range(1, 8)), "coalesced, but no step is lost"
        # the card showed its end before the reply that announces it
        calls = bot.fake.calls
        final_card = max(i for i, c in enumerate(calls) if c.ok and writes_card(c, deploy.slack_ts))
        final_reply = next(i for i, c in enumerate(calls) if c.ok and c.params.get("thread_ts") == deploy.slack_ts
                           and MENTION in c.params.get("text", ""))  # fmt: skip
        assert final_card < final_reply

    replies = sum(len(bot.thread_replies(d.id)) for d in deploys)
    assert replies < 10 * 8, f"step replies of the busy channel are coalesced ({replies} replies)"
    steps = [r for d in deploys for r in bot.thread_replies(d.id) if MENTION not in texts(r)]
    assert any(len(re.findall(r"\[\d/7\]", texts(r))) > 1 for r in steps), "one reply for several steps"
    web_api = [c for c in bot.fake.calls if c.method not in ("response_url", "file_upload")]
    limited = [c for c in web_api if c.status == 429]
    assert len(limited) <= max(1, len(web_api) // 20), f"{len(limited)} of {len(web_api)} calls got 429"
    updates = sorted((c.params["ts"], c.time) for c in bot.calls("chat.update") if c.ok)
    for _, times in itertools.groupby(updates, key=lambda u: u[0]):
        stamps = [time for _, time in times]
        assert all(b - a >= 0.45 for a, b in itertools.pairwise(stamps)), "≤ 1 update per interval a card"


async def test_a_429_pauses_the_whole_channel_for_retry_after(start_bot) -> None:
    bot = await start_bot(environments=environments(3), rate_limits=True)
    bot.fake.fail("chat.postMessage", 429, retry_after=2)
    first = await bot.service.trigger("env0", "main", user=ADMIN, channel=CHANNEL)
    await bot.wait_for(lambda: bot.calls("chat.postMessage"))
    refused = bot.calls("chat.postMessage")[0]
    assert refused.status == 429 and refused.response == {"ok": False, "error": "ratelimited"}
    # Two more deploys start after the 429 was answered (requests already in flight cannot be
    # recalled, so none may be): their cards wait for the pause like the refused one.
    await asyncio.sleep(0.5)
    others = [await bot.service.trigger(f"env{n}", "main", user=ADMIN, channel=CHANNEL) for n in (1, 2)]
    for deploy in (first, *others):
        while not (await bot.service.get(deploy.id)).state.is_finished:
            await asyncio.sleep(0.05)
    await bot.settle()

    posts = bot.calls("chat.postMessage")
    assert [c for c in posts[1:] if c.time - refused.time < 1.9] == [], "nothing posted into the pause"
    assert len([c for c in posts if c.ok and not c.params.get("thread_ts")]) == 3


async def test_nothing_final_is_dropped_when_slack_429s_again_and_again(start_bot) -> None:
    bot = await start_bot(environments=environments(1, str(SCRIPTS / "fail.sh")), rate_limits=True)
    bot.fake.fail("chat.postMessage", 429, retry_after=1, times=2)
    bot.fake.fail("chat.update", 429, retry_after=1, times=2)
    bot.fake.fail("files.completeUploadExternal", 429, retry_after=1, times=1)
    bot.fake.fail("files.getUploadURLExternal", 429, retry_after=1, times=1)
    (deploy,) = await deploy_all(bot, 1)
    assert deploy.state is Status.FAILED

    card = bot.card(deploy.id)
    assert "cancel_deploy" not in action_ids(card) and "compiler exploded" in texts(card)
    replies = bot.thread_replies(deploy.id)
    assert any(MENTION in texts(r) and "cleaning up" in texts(r) for r in replies)
    (uploaded,) = [f for f in bot.fake.files.values() if f.complete]
    assert uploaded.thread_ts == deploy.slack_ts and b"compiler exploded" in uploaded.data
    for method in ("chat.postMessage", "chat.update", "files.completeUploadExternal"):
        calls = bot.calls(method)
        for limited, after in itertools.pairwise(calls):
            if limited.status == 429:
                assert after.time - limited.time >= 0.9, f"{method} waited for Retry-After"
