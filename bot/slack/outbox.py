"""The notifier's one way out to Slack's Web API: budgets that follow Slack's rate limits, shared by
every deploy's worker, the order in which waiting work gets them, and what a 429 does to them.

Slack limits chat.postMessage per channel (about one a second, short bursts) and most other methods
per app (chat.update Tier 3, 50+ a minute; files and views.publish Tier 4, 100+ a minute). Each
budget here is a token bucket a little under that limit (`SLACK_PACING`). A worker asks for a grant
(`acquire`, possibly on several budgets at once: the first one granted wins) and only then builds
its message from the newest state and sends it (`send`), so whatever changed while it waited goes
out in that one call. When a budget is short, waiting work is served by Priority, first come first
served within one priority; card progress and step replies also leave a reserve in their bucket,
so the ends of many deploys at once find tokens waiting for them.

A 429 pauses its whole budget (the channel, or the method) for Retry-After: every worker waits,
instead of each request retrying into the limit on its own. So the notifier's client must not retry
429s itself (bot/slack/client.py `without_rate_limit_retries`); 5xx and connection errors are
still retried by the client. With several processes each keeps its own budgets and the 429s keep
them in line.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from types import MappingProxyType
from typing import TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError

T = TypeVar("T")
Budget = tuple[str, str | None]  # (budget name, channel for per-channel budgets)
DEFAULT_RETRY_AFTER = 1.0  # a 429 without Retry-After (Slack always sends one)
# Slack errors that say "try later" rather than "this will never work".
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


class Priority(IntEnum):
    """Who goes first when a budget is short (lower first)."""

    FINAL = 0  # a card's final state, the final reply with its mention, the log file
    NEW_CARD = 1  # the first sight of a deploy in the channel
    PROGRESS = 2  # a running card behind the deploy's state
    STEP = 3  # thread replies for steps (coalesced while they wait)
    TICK = 4  # a running card whose only news is its elapsed time


@dataclass(frozen=True)
class Limit:
    per_second: float
    burst: float  # bucket size: calls that may go at once after a quiet spell
    per_channel: bool = False
    # tokens that PROGRESS and lower leave in the bucket: kept for FINAL and NEW_CARD work
    reserve: float = 0.0


@dataclass(frozen=True)
class Pacing:
    """Budget name -> Limit. A name without a Limit is not paced (its 429s still pause it)."""

    limits: Mapping[str, Limit] = field(default_factory=dict)


# A little under Slack's published limits (bot/console/ratelimits.py models them): chat.update's
# burst is kept mostly for final states, so thirty deploys ending at once show their ends in
# seconds while progress goes at the sustained rate.
SLACK_PACING = Pacing(
    MappingProxyType(
        {
            "chat.postMessage": Limit(1.0, 3, per_channel=True, reserve=1),
            "chat.update": Limit(45 / 60, 40, reserve=30),
            "files.upload": Limit(90 / 60, 10),
            "views.publish": Limit(90 / 60, 10),
        }
    )
)
UNPACED = Pacing()


@dataclass(frozen=True)
class Want:
    """A worker's request for one call's worth of a budget."""

    kind: str  # what the worker will do with the grant
    budget: Budget
    priority: Priority
    seq: int  # its place in line (Outbox.ticket); kept while the same want waits again


class RateLimited(Exception):
    """Slack answered 429: the budget is paused; ask again (the grant waits for the pause)."""

    def __init__(self, budget: Budget, seconds: float) -> None:
        super().__init__(f"{budget[0]} rate limited for {seconds:g}s")
        self.budget = budget
        self.seconds = seconds


class SlackUnavailable(Exception):
    """Slack did not answer usefully; the same work is tried again later."""


def is_transient(exc: BaseException) -> bool:
    """Whether a failed call may work later (429, 5xx, "try later" errors, the network)."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", None) or getattr(response, "status", None) or 200
        error = response.get("error") if hasattr(response, "get") else None
        return status == 429 or status >= 500 or error in RETRYABLE_ERRORS
    return isinstance(exc, SlackRequestError | aiohttp.ClientError | TimeoutError | ConnectionError)


def slack_error(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError) and hasattr(exc.response, "get"):
        return str(exc.response.get("error") or "")
    return type(exc).__name__


class _Claim:
    """One acquire: its tickets (one per want) and the future the first grant resolves."""

    def __init__(self, future: asyncio.Future[Want]) -> None:
        self.future = future
        self.tickets: list[_Ticket] = []


@dataclass(eq=False)
class _Ticket:
    want: Want
    claim: _Claim
    bucket: _Bucket


class _Bucket:
    def __init__(self, limit: Limit | None, now: float) -> None:
        self.limit = limit
        self.tokens = limit.burst if limit else 0.0
        self.stamp = now  # tokens are counted up to here; after a 429, the pause's end
        self.paused_until = float("-inf")
        self.waiting: list[_Ticket] = []
        self.timer: asyncio.TimerHandle | None = None

    def _refill(self, now: float) -> None:
        if self.limit is None or now <= self.stamp:
            return
        self.tokens = min(self.limit.burst, self.tokens + (now - self.stamp) * self.limit.per_second)
        self.stamp = now

    def ready_at(self, priority: Priority, now: float) -> float:
        """When a call at `priority` may go: now, or a time to come back at."""
        start = max(now, self.paused_until)
        if self.limit is None:
            return start
        self._refill(now)
        reserve = self.limit.reserve if priority >= Priority.PROGRESS else 0.0
        missing = 1 + reserve - self.tokens
        return start if missing <= 0 else max(start, self.stamp + missing / self.limit.per_second)

    def take(self) -> None:
        if self.limit is not None:
            self.tokens -= 1

    def pause(self, until: float) -> None:
        self.paused_until = max(self.paused_until, until)
        if self.limit is not None:
            # Slack's window is spent: start again from empty once the pause is over.
            self.tokens = 0.0
            self.stamp = max(self.stamp, self.paused_until)

    def best(self) -> _Ticket:
        return min(self.waiting, key=lambda t: (t.want.priority, t.want.seq))


class Outbox:
    """Budgets for the Web API calls of every deploy's worker (see the module docstring)."""

    def __init__(self, pacing: Pacing = SLACK_PACING, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.pacing = pacing
        self.clock = clock
        self._buckets: dict[Budget, _Bucket] = {}
        self._seq = itertools.count()

    def budget(self, name: str, channel: str | None = None) -> Budget:
        limit = self.pacing.limits.get(name)
        return (name, channel if limit is not None and limit.per_channel else None)

    def ticket(self) -> int:
        """A place in line: wants that share a priority are served in ticket order."""
        return next(self._seq)

    def ready(self, budget: Budget, priority: Priority) -> bool:
        """Whether a call at `priority` could go right now, ahead of no one."""
        bucket = self._bucket(budget)
        now = self.clock()
        if any(t.want.priority <= priority for t in bucket.waiting):
            return False
        return bucket.ready_at(priority, now) <= now

    async def acquire(
        self, wants: Sequence[Want], *, wake: asyncio.Event | None = None, until: float | None = None
    ) -> Want | None:
        """Wait for the first of `wants` to be granted and return it (its token is spent). None
        when `wake` is set or the clock reaches `until` first: nothing was granted."""
        claim = _Claim(asyncio.get_running_loop().create_future())
        for want in wants:
            ticket = _Ticket(want, claim, self._bucket(want.budget))
            claim.tickets.append(ticket)
            ticket.bucket.waiting.append(ticket)
        try:
            for bucket in {id(t.bucket): t.bucket for t in claim.tickets}.values():
                self._pump(bucket)
            if not claim.future.done():
                await self._wait(claim.future, wake, until)
            return claim.future.result() if claim.future.done() else None
        finally:
            self._withdraw(claim)

    async def send(self, budget: Budget, call: Callable[[], Awaitable[T]]) -> T:
        """Make a granted call. A 429 pauses `budget` for Retry-After and raises RateLimited."""
        try:
            return await call()
        except SlackApiError as exc:
            if not _ratelimited(exc):
                raise
            seconds = _retry_after(exc)
            self.pause(budget, seconds)
            raise RateLimited(budget, seconds) from exc

    def pause(self, budget: Budget, seconds: float) -> None:
        """Nobody gets `budget` for `seconds` (Slack said so)."""
        bucket = self._bucket(budget)
        bucket.pause(self.clock() + max(0.0, seconds))
        self._pump(bucket)

    def close(self) -> None:
        for bucket in self._buckets.values():
            if bucket.timer is not None:
                bucket.timer.cancel()
                bucket.timer = None

    # --- granting -----------------------------------------------------------------------------

    def _bucket(self, budget: Budget) -> _Bucket:
        bucket = self._buckets.get(budget)
        if bucket is None:
            bucket = self._buckets[budget] = _Bucket(self.pacing.limits.get(budget[0]), self.clock())
        return bucket

    def pump(self) -> None:
        """Grant whatever can be granted now (the timers do this; tests with a fake clock too)."""
        for bucket in list(self._buckets.values()):
            self._pump(bucket)

    def _pump(self, bucket: _Bucket) -> None:
        if bucket.timer is not None:
            bucket.timer.cancel()
            bucket.timer = None
        now = self.clock()
        while bucket.waiting:
            best = bucket.best()
            at = bucket.ready_at(best.want.priority, now)
            if at > now:
                # Whoever is first in line decides when to look again: those behind it have the
                # same or a lower priority, so they need at least as many tokens.
                bucket.timer = asyncio.get_running_loop().call_later(at - now, self._pump, bucket)
                return
            bucket.take()
            claim = best.claim
            self._withdraw(claim)
            claim.future.set_result(best.want)

    def _withdraw(self, claim: _Claim) -> None:
        # Taking a waiter out of line never lets someone else through earlier (see _pump), so
        # no bucket needs pumping here.
        for ticket in claim.tickets:
            with contextlib.suppress(ValueError):
                ticket.bucket.waiting.remove(ticket)

    async def _wait(
        self, granted: asyncio.Future[Want], wake: asyncio.Event | None, until: float | None
    ) -> None:
        waits: set[asyncio.Future] = {granted}
        woken = asyncio.ensure_future(wake.wait()) if wake is not None else None
        if woken is not None:
            waits.add(woken)
        timeout = None if until is None else max(0.0, until - self.clock())
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if woken is not None:
                woken.cancel()


def _ratelimited(exc: SlackApiError) -> bool:
    response = exc.response
    status = getattr(response, "status_code", None)
    error = response.get("error") if hasattr(response, "get") else None
    return status == 429 or error == "ratelimited"


def _retry_after(exc: SlackApiError) -> float:
    headers = getattr(exc.response, "headers", None) or {}
    for name, value in headers.items():
        if name.lower() == "retry-after":
            with contextlib.suppress(TypeError, ValueError):
                return max(0.0, float(value[0] if isinstance(value, list) else value))
    return DEFAULT_RETRY_AFTER
