"""App Home: each environment's live version and running deploy, and the recent deploys, published
for a user when they open the tab and republished for everyone who has looked while deploys change.

Opening the tab is a listener's answer and goes out at once on the plain client. The republishing
after deploy events is background work: at most every `home_interval` seconds, through the
notifier's outbox (views.publish budget), and only for users who are still admins.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Config, Environment
from bot.slack.blocks import home
from bot.slack.feed import Timing
from bot.slack.outbox import Outbox, Priority, RateLimited, Want, is_transient, slack_error
from bot.slack.permissions import Admins
from storage.models import utcnow

if TYPE_CHECKING:
    from bot.deploy.service import DeployService

log = logging.getLogger(__name__)

HOME_RECENT = 10


class AppHome:
    def __init__(
        self,
        config: Config,
        service: DeployService,
        client: AsyncWebClient,
        paced: AsyncWebClient,
        admins: Admins,
        outbox: Outbox,
        timing: Timing,
    ) -> None:
        self.config = config
        self.service = service
        self.client = client
        self.paced = paced  # leaves 429s to the outbox
        self.admins = admins
        self.outbox = outbox
        self.timing = timing
        self._viewers: set[str] = set()
        self._dirty: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closing = False

    def remember_viewer(self, user_id: str) -> None:
        self._viewers.add(user_id)

    async def publish(self, user_id: str) -> None:
        await self.client.views_publish(user_id=user_id, view=await self.view())

    async def view(self) -> dict:
        envs = []
        locks = {lock.environment: lock for lock in await self.service.locks.all()}
        for env in self.config.environments.values():
            envs.append(replace(await self._env_home(env), lock=locks.get(env.name)))
        recent = (await self.service.history(page_size=HOME_RECENT)).items
        return home.home_view(envs, recent, self.config.locale, now=utcnow())

    async def _env_home(self, env: Environment) -> home.EnvHome:
        running = await self.service.active(env.name)
        estimate = await self.service.estimate(env.name) if running else None
        return home.EnvHome(
            env=env, live=await self.service.last_success(env.name), running=running, estimate=estimate
        )

    def changed(self) -> None:
        """A deploy changed: republish soon for everyone who has looked."""
        if not self._viewers or self._closing:
            return
        if self._dirty is None:
            self._dirty = asyncio.Event()
        self._dirty.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="slack-home")

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        assert self._dirty is not None
        backoff = self.timing.retry_initial
        budget = self.outbox.budget("views.publish")
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                view = await self.view()
                for user_id in list(self._viewers):
                    # someone dropped from the admins (or their group) sees no more deploys
                    if not await self.admins.is_admin(user_id):
                        self._viewers.discard(user_id)
                        continue
                    await self.outbox.acquire([Want("home", budget, Priority.PROGRESS, self.outbox.ticket())])
                    await self.outbox.send(
                        budget,
                        lambda user=user_id, shown=view: self.paced.views_publish(user_id=user, view=shown),
                    )
            except RateLimited:
                self._dirty.set()  # the budget is paused: the next publish waits for it
                continue
            except Exception as exc:
                if not is_transient(exc):
                    log.warning("App Home publish failed: %s", slack_error(exc))
                else:
                    self._dirty.set()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.timing.retry_cap)
                    continue
            backoff = self.timing.retry_initial
            await asyncio.sleep(self.timing.home_interval)
