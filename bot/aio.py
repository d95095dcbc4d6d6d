"""Waiting with a time limit in loops that must end when their task is cancelled.

On Python 3.11 `asyncio.wait_for` may take a cancellation that arrives as its timeout fires for the
timeout: a loop that suppresses TimeoutError then goes on forever, and whoever cancelled it waits
forever too. `asyncio.timeout` tells the two apart; these helpers are built on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def within(awaitable: Awaitable[object], timeout: float | None) -> bool:
    """Await `awaitable` for at most `timeout` seconds: True if it finished, False if the time ran
    out (it is then cancelled, unless shielded)."""
    try:
        async with asyncio.timeout(timeout):
            await awaitable
    except TimeoutError:
        return False
    return True


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until `event` is set (True) or `timeout` seconds pass (False)."""
    return await within(event.wait(), timeout)


async def every(
    seconds: float,
    action: Callable[[], Awaitable[object]],
    *,
    what: str,
    wake: asyncio.Event | None = None,
) -> None:
    """Run `action` every `seconds` (at once when `wake` is set), for as long as the task runs. A
    failure is logged at debug level and the next turn tries again (the database may be away for a
    moment), unless it stands in for this task's cancellation: then the loop ends."""
    wake = wake or asyncio.Event()
    while True:
        await wait_event(wake, seconds)
        wake.clear()
        try:
            await action()
        except Exception as exc:
            if cancelling():
                raise asyncio.CancelledError from exc
            log.debug("%s failed, retrying: %r", what, exc)


def cancelling() -> bool:
    """Whether the running task is being cancelled. A loop that retries on any error asks this, so
    an error that stands in for a cancellation (raised while cleaning up after it) never keeps it
    going."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
