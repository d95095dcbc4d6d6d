"""Waiting with a time limit in loops that must end when their task is cancelled.

On Python 3.11 `asyncio.wait_for` may take a cancellation that arrives as its timeout fires for the
timeout: a loop that suppresses TimeoutError then goes on forever, and whoever cancelled it waits
forever too. `asyncio.timeout` tells the two apart; these helpers are built on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


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


def cancelling() -> bool:
    """Whether the running task is being cancelled. A loop that retries on any error asks this, so
    an error that stands in for a cancellation (raised while cleaning up after it) never keeps it
    going."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
