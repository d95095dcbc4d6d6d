"""Following a deploy's log while it is written: the REST stream and the console's `logs -f`.

A follower reads the database (any process can follow any deploy) from a byte offset and gets the
log as whole UTF-8 characters, each piece with the byte offset it ends at. While the deploy runs it
reads again when this process stored a chunk of that log, or at the latest every POLL_SECONDS.

`FOLLOWERS` is this process's register of who follows which log. The log writer asks it how long
trickling output may wait before it is stored (FOLLOWED_TRICKLE_SECONDS instead of a quarter of a
second while someone follows), and tells it when a chunk was stored, so a follower in the process
that runs the deploy sees a printed line within a few tens of milliseconds. A follower in another
process tells the owner it follows (a signal, renewed every HINT_SECONDS while it follows; see
`LogFollow(hint=)`), and the owner trickles fast for REMOTE_SECONDS after each: that follower finds
the output at its next poll.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Protocol

from bot.deploy.queries import LogView
from storage.models import Deploy

FOLLOWED_TRICKLE_SECONDS = 0.02  # at most fifty small transactions a second, only while followed
POLL_SECONDS = 0.1  # a follower's look at the database when nothing woke it earlier
HINT_SECONDS = 5.0  # how often a follower in another process tells the owner it still follows
REMOTE_SECONDS = 12.0  # how long the owner trickles fast after such a word


class LogFollowers:
    """Which deploys' logs are followed in this process, and how to wake their followers."""

    def __init__(self) -> None:
        self._wakers: dict[int, set[asyncio.Event]] = {}
        self._remote: dict[int, float] = {}  # deploy id -> until when (monotonic) another process follows

    def followed(self, deploy_id: int) -> bool:
        if self._wakers.get(deploy_id):
            return True
        until = self._remote.get(deploy_id)
        if until is not None and until <= time.monotonic():
            del self._remote[deploy_id]
            return False
        return until is not None

    def followed_elsewhere(self, deploy_id: int, seconds: float = REMOTE_SECONDS) -> None:
        """A follower in another process reads this deploy's log: store it promptly for a while."""
        self._remote[deploy_id] = time.monotonic() + seconds

    def trickle_seconds(self, deploy_id: int, default: float) -> float:
        return min(default, FOLLOWED_TRICKLE_SECONDS) if self.followed(deploy_id) else default

    def stored(self, deploy_id: int) -> None:
        """A chunk of the deploy's log was stored: its followers read now."""
        for waker in self._wakers.get(deploy_id, ()):
            waker.set()

    @contextlib.contextmanager
    def watch(self, deploy_id: int) -> Iterator[asyncio.Event]:
        waker = asyncio.Event()
        self._wakers.setdefault(deploy_id, set()).add(waker)
        try:
            yield waker
        finally:
            wakers = self._wakers.get(deploy_id, set())
            wakers.discard(waker)
            if not wakers:
                self._wakers.pop(deploy_id, None)


FOLLOWERS = LogFollowers()


log = logging.getLogger(__name__)


class LogReader(Protocol):
    async def logs(self, deploy_id: int, offset: int = 0) -> LogView: ...


def whole_text(view: LogView) -> tuple[str, int]:
    """The bytes read as text and the offset the text ends at: a character the read cut in two is
    left for the next read, unless the log is complete (then it becomes U+FFFD)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(view.data, final=view.complete)
    return text, view.next_offset - len(decoder.getstate()[0])


class LogFollow:
    """One follower of one deploy's log, from `offset`. Use as a context manager (it registers
    with FOLLOWERS), then call `next()` until it answers None."""

    def __init__(
        self,
        reader: LogReader,
        deploy_id: int,
        offset: int = 0,
        *,
        hint: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.reader = reader
        self.deploy_id = deploy_id
        self.hint = hint  # tells the deploy's owner, wherever it runs, that someone follows
        self._hinted = 0.0
        self.offset = offset  # where the next piece starts: always at a whole character
        self.deploy: Deploy | None = None  # as of the last read; the final record once done
        self._waker: asyncio.Event | None = None
        self._watch: contextlib.AbstractContextManager[asyncio.Event] | None = None

    def __enter__(self) -> LogFollow:
        self._watch = FOLLOWERS.watch(self.deploy_id)
        self._waker = self._watch.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._watch is not None:
            self._watch.__exit__(None, None, None)
            self._watch = self._waker = None

    async def next(self, wait: float = POLL_SECONDS) -> str | None:
        """The next piece of log (whole characters; `offset` is then its end), "" when nothing new
        came within `wait` seconds, None once the deploy has finished and all of it was given."""
        waited = False
        await self._hint()
        while True:
            if self._waker is not None:
                self._waker.clear()  # before the read: a chunk stored during it wakes the wait below
            view = await self.reader.logs(self.deploy_id, self.offset)
            self.deploy = view.deploy
            text, end = whole_text(view)
            if end > self.offset:
                self.offset = end
                return text
            if view.complete:
                return None
            if waited:
                return ""
            waited = True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await (self._waker or asyncio.Event()).wait()

    async def _hint(self) -> None:
        if self.hint is None or time.monotonic() - self._hinted < HINT_SECONDS:
            return
        self._hinted = time.monotonic()
        try:
            await self.hint()
        except Exception as exc:  # only a speed-up: the follower reads the database anyway
            log.debug("deploy #%s: could not tell its owner about a follower: %r", self.deploy_id, exc)
