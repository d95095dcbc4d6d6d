"""The local Slack's rate limits (bot/console/ratelimits.py), through slack_sdk's own client: off
unless asked; when on, chat.postMessage per channel and tiered methods per app, with bursts,
answered 429 `ratelimited` with Retry-After as Slack does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.console.ratelimits import SLACK_LIMITS, RateLimit, RateLimiter
from tests.fakeslack import FakeSlack

CHANNEL, OTHER = "C0DEPLOY1", "C0RANDOM1"


@pytest.fixture
async def limited() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(rate_limits=SLACK_LIMITS) as fake:
        yield fake


def client_of(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token="xoxb-test", base_url=fake.api_url)  # no retry handlers: 429s surface


async def test_posts_are_limited_per_channel_after_a_short_burst(limited: FakeSlack) -> None:
    client = client_of(limited)
    limited.add_channel(OTHER, "random")
    burst = int(SLACK_LIMITS["chat.postMessage"].burst)
    for n in range(burst):
        await client.chat_postMessage(channel=CHANNEL, text=f"message {n}")
    with pytest.raises(SlackApiError) as refused:
        await client.chat_postMessage(channel=CHANNEL, text="one too many")
    assert refused.value.response.status_code == 429
    assert refused.value.response["error"] == "ratelimited"
    assert refused.value.response.headers["Retry-After"] == "1"
    await client.chat_postMessage(channel=OTHER, text="another channel has its own budget")
    assert [c.status for c in limited.calls_to("chat.postMessage")] == [200] * burst + [429, 200]
    assert len([m for (channel, _), m in limited.messages.items() if channel == CHANNEL]) == burst


async def test_tiered_methods_are_limited_per_app_across_channels() -> None:
    limits = {"chat.update": RateLimit(per_minute=6, burst=2)}
    async with FakeSlack(rate_limits=limits) as fake:
        client = client_of(fake)
        fake.add_channel(OTHER, "random")
        first = await client.chat_postMessage(channel=CHANNEL, text="a")
        second = await client.chat_postMessage(channel=OTHER, text="b")
        await client.chat_update(channel=CHANNEL, ts=first["ts"], text="a1")
        await client.chat_update(channel=OTHER, ts=second["ts"], text="b1")
        with pytest.raises(SlackApiError) as refused:
            await client.chat_update(channel=CHANNEL, ts=first["ts"], text="a2")
        assert refused.value.response.headers["Retry-After"] == "10"  # 6 a minute: one every 10 s
        assert fake.messages[(CHANNEL, first["ts"])]["text"] == "a1"


async def test_limits_are_off_unless_asked() -> None:
    async with FakeSlack() as fake:
        client = client_of(fake)
        for n in range(20):
            await client.chat_postMessage(channel=CHANNEL, text=f"message {n}")
        assert all(c.status == 200 for c in fake.calls)


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    now = [0.0]
    limiter = RateLimiter({"chat.postMessage": RateLimit(60, 2, per_channel=True)}, clock=lambda: now[0])
    params = {"channel": CHANNEL}
    assert [limiter.retry_after("chat.postMessage", params) for _ in range(3)] == [None, None, 1]
    now[0] = 0.5
    assert limiter.retry_after("chat.postMessage", params) == 1  # half a token is not a call
    now[0] = 1.0
    assert limiter.retry_after("chat.postMessage", params) is None
    now[0] = 100.0  # a long quiet spell fills the bucket to its burst, no more
    assert [limiter.retry_after("chat.postMessage", params) for _ in range(3)] == [None, None, 1]
    assert limiter.retry_after("users.info", {}) is None  # not in the table: never limited
