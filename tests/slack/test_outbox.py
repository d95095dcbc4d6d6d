"""The notifier's outbox (bot/slack/outbox.py) on a fake clock: who gets a short budget first, what
a reserve keeps for the ends of deploys, and how one 429 pauses a budget for everyone."""

from __future__ import annotations

import asyncio

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.slack.outbox import Limit, Outbox, Pacing, Priority, RateLimited, Want

CHANNEL = "C0DEPLOY1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def outbox(clock: Clock, **limits: Limit) -> Outbox:
    return Outbox(Pacing({name.replace("_", "."): limit for name, limit in limits.items()}), clock=clock)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def advance(box: Outbox, clock: Clock, seconds: float) -> None:
    clock.now += seconds
    box.pump()
    await settle()


def ratelimited(retry_after: str) -> SlackApiError:
    response = AsyncSlackResponse(
        client=None,
        http_verb="POST",
        api_url="chat.postMessage",
        req_args={},
        data={"ok": False, "error": "ratelimited"},
        headers={"retry-after": retry_after},
        status_code=429,
    )
    return SlackApiError("ratelimited", response)


async def test_a_short_budget_serves_finals_then_new_cards_then_progress_then_steps(clock) -> None:
    box = outbox(clock, chat_postMessage=Limit(1.0, 1, per_channel=True))
    post = box.budget("chat.postMessage", CHANNEL)
    assert await box.acquire([Want("first", post, Priority.STEP, box.ticket())])  # the one token

    served: list[str] = []

    async def ask(kind: str, priority: Priority) -> None:
        want = await box.acquire([Want(kind, post, priority, box.ticket())])
        served.append(want.kind)

    asked = [("step-a", Priority.STEP), ("progress", Priority.PROGRESS), ("step-b", Priority.STEP),
             ("card", Priority.NEW_CARD), ("final", Priority.FINAL)]  # fmt: skip
    tasks = [asyncio.create_task(ask(kind, priority)) for kind, priority in asked]
    await settle()
    assert served == [] and not box.ready(post, Priority.FINAL)
    for _ in asked:
        await advance(box, clock, 1.0)  # one token a second
    assert served == ["final", "card", "progress", "step-a", "step-b"]  # FIFO within a priority
    await asyncio.gather(*tasks)


async def test_progress_leaves_the_reserve_for_finals(clock) -> None:
    box = outbox(clock, chat_update=Limit(1.0, 3, reserve=2))
    update = box.budget("chat.update")
    assert await box.acquire([Want("progress", update, Priority.PROGRESS, box.ticket())])
    # two tokens left, both reserved: progress waits, a final still goes at once
    assert not box.ready(update, Priority.PROGRESS)
    assert box.ready(update, Priority.FINAL)
    waiting = asyncio.create_task(box.acquire([Want("progress", update, Priority.PROGRESS, box.ticket())]))
    await settle()
    assert not waiting.done()
    assert await box.acquire([Want("final", update, Priority.FINAL, box.ticket())])
    assert await box.acquire([Want("final", update, Priority.FINAL, box.ticket())])
    await advance(box, clock, 2.9)  # 2.9 tokens: not yet the 3 progress needs
    assert not waiting.done()
    await advance(box, clock, 0.1)
    assert waiting.done()


async def test_a_429_pauses_the_whole_budget_for_everyone_for_retry_after(clock) -> None:
    box = outbox(clock, chat_postMessage=Limit(1.0, 3, per_channel=True))
    post = box.budget("chat.postMessage", CHANNEL)
    other = box.budget("chat.postMessage", "C0OTHER01")
    assert await box.acquire([Want("a", post, Priority.STEP, box.ticket())])

    async def limited() -> None:
        raise ratelimited("5")

    with pytest.raises(RateLimited) as caught:
        await box.send(post, limited)
    assert caught.value.seconds == 5.0
    # the channel had tokens left, but nobody gets it (not even a final) until Retry-After is over
    assert not box.ready(post, Priority.FINAL)
    final = asyncio.create_task(box.acquire([Want("final", post, Priority.FINAL, box.ticket())]))
    await advance(box, clock, 4.9)
    assert not final.done()
    await advance(box, clock, 1.1)  # the pause is over and the bucket starts from empty
    assert final.done()
    assert box.ready(other, Priority.STEP), "another channel's budget is not paused"


async def test_the_first_budget_granted_wins_and_the_other_want_leaves_the_line(clock) -> None:
    box = outbox(clock, chat_postMessage=Limit(1.0, 1, per_channel=True), chat_update=Limit(1.0, 1))
    post, update = box.budget("chat.postMessage", CHANNEL), box.budget("chat.update")
    assert await box.acquire([Want("x", post, Priority.STEP, box.ticket())])  # the channel is spent
    want = await box.acquire(
        [
            Want("steps", post, Priority.STEP, box.ticket()),
            Want("update", update, Priority.PROGRESS, box.ticket()),
        ]
    )
    assert want.kind == "update"
    assert box.ready(post, Priority.FINAL) is False  # still spent, but nobody of ours waits in it
    await advance(box, clock, 1.0)
    assert box.ready(post, Priority.STEP), "the withdrawn step want took no token"


async def test_news_or_a_deadline_interrupts_a_wait_without_spending_a_token(clock) -> None:
    box = outbox(clock, chat_update=Limit(1.0, 1))
    update = box.budget("chat.update")
    assert await box.acquire([Want("x", update, Priority.PROGRESS, box.ticket())])
    wake = asyncio.Event()
    waiting = asyncio.create_task(box.acquire([Want("y", update, Priority.TICK, box.ticket())], wake=wake))
    await settle()
    wake.set()
    assert await waiting is None
    assert await box.acquire([Want("z", update, Priority.TICK, box.ticket())], until=clock.now) is None
    await advance(box, clock, 1.0)
    assert box.ready(update, Priority.TICK)


async def test_an_unpaced_budget_never_waits_but_still_honours_a_429(clock) -> None:
    box = Outbox(Pacing(), clock=clock)
    post = box.budget("chat.postMessage", CHANNEL)
    assert post == ("chat.postMessage", None)
    for _ in range(100):
        assert await box.acquire([Want("step", post, Priority.STEP, box.ticket())])
    box.pause(post, 2)
    assert not box.ready(post, Priority.FINAL)
    await advance(box, clock, 2)
    assert box.ready(post, Priority.FINAL)
