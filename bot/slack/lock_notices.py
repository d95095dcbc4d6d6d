"""What the bot tells people about environment locks (DESIGN §9), from the lock events on the
service's bus: the holder gets a DM with 延长 1 小时 / 解锁 shortly before their lock ends, and a DM
when a manager ended it; the channel (`[bot] notify_channel`) is told when a lock expires. App Home
is republished on every lock event.

Each event is seen by one process only (the one that did it, or whose job found it), so each
message is sent once. They are few: each goes out at once in a task of its own, on the Web API
client, whose retry handlers wait out 429s and retry server errors.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Config
from bot.deploy.lock_events import LockEvent, LockExpired, LockReleased, LockReminder
from bot.slack.blocks import locks as blocks
from bot.slack.blocks.messages import Message
from bot.slack.blocks.mrkdwn import USER_ID
from bot.slack.outbox import slack_error
from storage.models import utcnow

if TYPE_CHECKING:
    from bot.slack.apphome import AppHome

log = logging.getLogger(__name__)


class LockNotices:
    def __init__(self, config: Config, client: AsyncWebClient, home: AppHome) -> None:
        self.config = config
        self.client = client
        self.home = home
        self.locale = config.locale
        self._tasks: set[asyncio.Task] = set()

    def observe(self, event: LockEvent) -> None:
        """Called inline by the service: only starts the sending."""
        self.home.changed()
        lock = event.lock
        env = self.config.environments.get(lock.environment)
        if isinstance(event, LockReminder):
            self._send_to_person(lock.holder, blocks.reminder_message(lock, env, self.locale, now=utcnow()))
        elif isinstance(event, LockReleased) and not event.was_holder:
            message = blocks.released_by_message(lock, env, self.locale, by=event.by)
            self._send_to_person(lock.holder, message)
        elif isinstance(event, LockExpired) and self.config.bot.notify_channel:
            self._send(self.config.bot.notify_channel, blocks.expired_message(lock, env, self.locale))

    async def wait_idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self, timeout: float = 10.0) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _send_to_person(self, holder: str, message: Message) -> None:
        if USER_ID.match(holder):  # an API token (`api:ci`) has no DM
            self._send(holder, message)

    def _send(self, channel: str, message: Message) -> None:
        task = asyncio.get_running_loop().create_task(self._post(channel, message), name="slack-lock-notice")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, channel: str, message: Message) -> None:
        try:
            await self.client.chat_postMessage(channel=channel, unfurl_links=False, **message.as_kwargs())
        except Exception as exc:
            log.warning("lock notice to %s failed: %s", channel, slack_error(exc))
