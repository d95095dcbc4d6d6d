"""Slack's Web API rate limits as the local workspace enforces them, when asked:
`LocalSlack(rate_limits=SLACK_LIMITS)`. Off by default, so the console and most tests stay quick.

Slack publishes its limits per method: chat.postMessage about one message a second per channel,
with short bursts tolerated; the others by tier, counted per app and minute (Tier 2 20+, Tier 3 50+,
Tier 4 100+ a minute), with occasional bursts. Each limit here is a token bucket filled at that rate:
the tiers hold a minute's allowance (the per-minute window Slack counts in), chat.postMessage a few
messages. A call that finds its bucket empty is answered as Slack does: HTTP 429,
`{"ok": false, "error": "ratelimited"}` and `Retry-After` in whole seconds until the next token.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class RateLimit:
    per_minute: float
    burst: float  # calls that may go at once on a full bucket
    per_channel: bool = False  # counted per `channel` instead of per app

    @property
    def per_second(self) -> float:
        return self.per_minute / 60


def tier(per_minute: float) -> RateLimit:
    """A tiered method: the per-minute allowance, which may be spent at once."""
    return RateLimit(per_minute, per_minute)


TIER_2, TIER_3, TIER_4 = tier(20), tier(50), tier(100)

SLACK_LIMITS: Mapping[str, RateLimit] = MappingProxyType(
    {
        "chat.postMessage": RateLimit(60, 5, per_channel=True),
        "chat.update": TIER_3,
        "chat.postEphemeral": TIER_4,
        "views.open": TIER_4,
        "views.push": TIER_4,
        "views.update": TIER_4,
        "views.publish": TIER_4,
        "users.info": TIER_4,
        "usergroups.users.list": TIER_2,
        "conversations.info": TIER_3,
        "files.getUploadURLExternal": TIER_4,
        "files.completeUploadExternal": TIER_4,
        "auth.test": TIER_4,
    }
)


class _Bucket:
    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.tokens = limit.burst
        self.stamp = now

    def take(self, now: float) -> float:
        """0 when a token was taken, else the seconds until one is there."""
        self.tokens = min(self.limit.burst, self.tokens + (now - self.stamp) * self.limit.per_second)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.limit.per_second


class RateLimiter:
    """Counts the calls of every limited method (per channel where Slack does) and says when one
    must wait. Methods without a limit always go."""

    def __init__(
        self, limits: Mapping[str, RateLimit], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limits = limits
        self.clock = clock
        self._buckets: dict[tuple[str, str | None], _Bucket] = {}

    def retry_after(self, method: str, params: Mapping[str, Any]) -> int | None:
        """None if the call may go now (it is counted), else the Retry-After to answer, in seconds."""
        limit = self.limits.get(method)
        if limit is None:
            return None
        key = (method, str(params.get("channel") or "") if limit.per_channel else None)
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(limit, now)
        wait = bucket.take(now)
        return None if wait == 0 else max(1, math.ceil(wait))
