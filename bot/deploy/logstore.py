"""A deploy's output on its way to storage: appended to its log in chunks, in order, exactly once.

At once when a megabyte has piled up, so memory stays flat however much a script prints; a quiet
script's lines within a quarter of a second, so a follower and the first line of a deploy are
prompt; in any case every second. Output waits as the pieces the pipe delivered: a piece is never
copied before it is stored, and a chunk of one piece is stored as it is. Past HIGH_WATER the reader
waits for storage (back-pressure on the script's pipe) instead of holding more in memory.

The writer only cuts and orders chunks; storing one (retried, owner-checked) is its `store`
callback's job. A chunk whose store raises LogConflict means two writers of one log: the log is
lost, loudly. LeaseLost means the deploy is no longer this process's: whatever waits is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from bot.deploy.logfollow import FOLLOWERS
from storage import repository as repo

log = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024  # stored once this much is waiting (or once a second)
MAX_CHUNK = 4 * CHUNK_SIZE  # what one transaction takes when output outruns storage
HIGH_WATER = 8 * CHUNK_SIZE  # past this the pipe waits for storage: back-pressure, not memory
FLUSH_SECONDS = 1.0
# Output that trickles in is stored at once when nothing was stored for this long, else this long
# after the last store: prompt for a reader, and at most a few small transactions a second.
# While someone follows the log in this process, much sooner (see logfollow.py).
TRICKLE_SECONDS = 0.25

# store(offset, data) -> how many of `data`'s bytes are stored at `offset` (see repo.append_log)
Store = Callable[[int, bytes], Awaitable[int]]


class LogWriter:
    def __init__(self, deploy_id: int, store: Store) -> None:
        self.deploy_id = deploy_id
        self._store = store
        self.conflict: str | None = None  # someone else's bytes at our offset: the log is lost
        self._dropped = False  # the deploy is no longer ours: nothing more is stored
        self._pending: deque[bytes] = deque()  # output not stored yet, as the pipe delivered it
        self._pending_size = 0
        self._offset = 0
        self._flushing: asyncio.Task | None = None
        self._stored = asyncio.Event()  # a chunk was stored: room for more output
        self._due = False  # a second has passed: flush even a partial chunk
        self._last_store = float("-inf")  # loop time the last chunk began to be stored
        self._trickle: asyncio.TimerHandle | None = None
        self._ticker: asyncio.Task | None = None

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick())

    def stop_timers(self) -> None:
        """The script is done: no more timed flushes (the final one is `drain`'s)."""
        if self._ticker is not None:
            self._ticker.cancel()  # before the drain: two flushes at once would store a chunk twice
        if self._trickle is not None:
            self._trickle.cancel()

    def drop(self) -> None:
        """The deploy is no longer ours: forget what waits and store nothing more."""
        self._dropped = True
        self._forget()

    async def output(self, data: bytes) -> None:
        if self.conflict or self._dropped:
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size >= CHUNK_SIZE:
            self._kick()
            # Read on as soon as one chunk is stored, so reading and storing overlap.
            while self._pending_size >= HIGH_WATER and not self._flushing.done():
                self._stored.clear()
                await self._stored.wait()
        elif self._trickle is None:
            loop = asyncio.get_running_loop()
            delay = FOLLOWERS.trickle_seconds(self.deploy_id, TRICKLE_SECONDS)
            self._trickle = loop.call_at(max(loop.time(), self._last_store + delay), self._trickled)

    async def drain(self) -> None:
        """Store everything that waits (after `stop_timers`)."""
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing
        self._due = True
        await self._flush()

    def _trickled(self) -> None:
        self._trickle = None
        self._due = True
        self._kick()

    def _kick(self) -> None:
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            await self._store_chunks()
        finally:
            self._stored.set()

    async def _store_chunks(self) -> None:
        # Whole chunks while output pours in; whatever is there once a second is due.
        while not self._dropped and (self._pending_size >= CHUNK_SIZE or (self._due and self._pending)):
            count, size = self._next_chunk()
            self._last_store = asyncio.get_running_loop().time()
            data = self._pending[0] if count == 1 else b"".join(itertools.islice(self._pending, count))
            try:
                # Retried as it is, never re-cut: a retry whose first attempt landed finds it stored.
                stored = await self._store(self._offset, data)
            except repo.LogConflict as exc:
                self._lose_log(str(exc))
                return
            except repo.LeaseLost:
                self.drop()
                return
            self._consume(stored)
            self._stored.set()
            FOLLOWERS.stored(self.deploy_id)
            if not self._pending:
                self._due = False

    def _next_chunk(self) -> tuple[int, int]:
        """How many waiting pieces the next chunk takes (at least one, else up to MAX_CHUNK)."""
        count = size = 0
        for piece in self._pending:
            if count and size + len(piece) > MAX_CHUNK:
                break
            count += 1
            size += len(piece)
        return count, size

    def _consume(self, size: int) -> None:
        """The first `size` waiting bytes are stored: let them go."""
        self._offset += size
        self._pending_size -= size
        while size:
            piece = self._pending[0]
            if len(piece) > size:  # only when less was stored than sent (see append_log)
                self._pending[0] = piece[size:]
                return
            self._pending.popleft()
            size -= len(piece)

    def _lose_log(self, reason: str) -> None:
        # Two writers of one log: storing on would interleave them. Fail the deploy loudly instead.
        log.error("deploy #%s: %s; its log is no longer stored", self.deploy_id, reason)
        self.conflict = reason
        self._forget()

    def _forget(self) -> None:
        self._pending.clear()
        self._pending_size = 0
        self._stored.set()  # a reader waiting for room reads on (and its output is dropped)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self._due = True
            self._kick()
