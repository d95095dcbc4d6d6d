"""The [[notify]] sinks of one process: an observer of the event bus, one queue and worker per sink.

Each event reaches the bus of exactly one process, cluster-wide: the one that moved the deploy
(started it, ended it, reaped it, had it wait for approval; every such move is a compare-and-set in
the database). So every process subscribes, and each notice leaves once. `observe` only filters,
builds the notice and puts it on the sink's bounded queue: a full queue drops the notice (logged),
so a sink that hangs or fails never holds up the bus or a deploy. The worker sends with a timeout
per attempt and backs off between attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass

import aiohttp

from bot.config import Config
from bot.config.model import NotifySink
from bot.notify.messages import Notice, TextMasker, notice_of
from bot.notify.sinks import GiveUp, Retry, deliver_email, deliver_http

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    request_timeout: float = 10.0  # one attempt, connection to answer
    backoff: tuple[float, ...] = (2.0, 6.0)  # the waits between attempts: 3 attempts in ~10 s
    queue_size: int = 100  # notices waiting per sink; more are dropped


SEEN = 1024  # (deploy, event) pairs remembered, so a repeated event is sent once


class SinkWorker:
    """One sink: its queue and the task that empties it."""

    def __init__(self, number: int, sink: NotifySink, timing: Timing) -> None:
        self.number = number
        self.sink = sink
        self.timing = timing
        self.queue: asyncio.Queue[Notice] = asyncio.Queue(timing.queue_size)
        self.task: asyncio.Task | None = None
        self.sent = 0
        self.failed = 0

    @property
    def name(self) -> str:  # what logs call it: never its URL, which holds its key
        return f"notify[{self.number}] ({self.sink.kind})"

    def wants(self, notice: Notice) -> bool:
        sink = self.sink
        return notice.event in sink.events and (
            not sink.environments or notice.environment in sink.environments
        )

    def offer(self, notice: Notice, session: aiohttp.ClientSession) -> None:
        try:
            self.queue.put_nowait(notice)
        except asyncio.QueueFull:
            self.failed += 1
            log.warning("%s: %d notices wait already; dropped %s of #%s", self.name,
                        self.queue.qsize(), notice.event, notice.record.get("id"))  # fmt: skip
            return
        if self.task is None:
            self.task = asyncio.create_task(self._run(session), name=f"notify-{self.number}")

    async def _run(self, session: aiohttp.ClientSession) -> None:
        while True:
            notice = await self.queue.get()
            try:
                await self._send(notice, session)
            finally:
                self.queue.task_done()

    async def _send(self, notice: Notice, session: aiohttp.ClientSession) -> None:
        what = f"{notice.event} of #{notice.record.get('id')}"
        waits = (*self.timing.backoff, None)
        for attempt, wait in enumerate(waits, start=1):
            try:
                async with asyncio.timeout(self.timing.request_timeout + 1):
                    await self._attempt(notice, session)
            except (Retry, TimeoutError) as exc:
                reason = str(exc) if isinstance(exc, Retry) else "timed out"
                if wait is None:
                    self.failed += 1
                    log.warning("%s: %s not sent after %d attempts (%s)", self.name, what, attempt, reason)
                    return
                log.info(
                    "%s: %s attempt %d failed (%s), again in %.1f s", self.name, what, attempt, reason, wait
                )
                await asyncio.sleep(wait)
            except GiveUp as exc:
                self.failed += 1
                log.warning("%s: %s refused (%s), not retried", self.name, what, exc)
                return
            except Exception as exc:  # a bug here must not end the worker; its text may hold the URL
                self.failed += 1
                log.error("%s: %s failed: %s", self.name, what, type(exc).__name__)
                return
            else:
                self.sent += 1
                return

    async def _attempt(self, notice: Notice, session: aiohttp.ClientSession) -> None:
        if self.sink.kind == "email":
            await deliver_email(self.sink, notice, self.timing.request_timeout)
        else:
            await deliver_http(session, self.sink, notice, self.timing.request_timeout)


class Notifications:
    """Subscribe `observe` to the service's event bus; `close` at the end lets the queues empty."""

    def __init__(self, config: Config, timing: Timing | None = None) -> None:
        self.config = config
        timing = timing or Timing()
        self.workers = [SinkWorker(n, sink, timing) for n, sink in enumerate(config.notify)]
        self._mask = TextMasker(config.secret_values())
        self._session: aiohttp.ClientSession | None = None
        self._seen: OrderedDict[tuple[int, str], None] = OrderedDict()

    def observe(self, event: object) -> None:
        notice = notice_of(event, self.config, self._mask)
        if notice is None or self._repeated(notice):
            return
        targets = [worker for worker in self.workers if worker.wants(notice)]
        if not targets:
            return
        if self._session is None:  # made on the loop, on first use: the runtime is built before it
            self._session = aiohttp.ClientSession()
        for worker in targets:
            worker.offer(notice, self._session)

    async def flush(self) -> None:
        """Wait until every queued notice was sent or given up (tests)."""
        await asyncio.gather(*(worker.queue.join() for worker in self.workers if worker.task))

    async def close(self, timeout: float) -> None:
        """Give what is queued up to `timeout` seconds to leave, then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.flush()
        tasks = [worker.task for worker in self.workers if worker.task]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for worker in self.workers:
            worker.task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _repeated(self, notice: Notice) -> bool:
        key = (notice.record.get("id") or 0, notice.event)
        if key in self._seen:
            return True
        self._seen[key] = None
        if len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        return False
