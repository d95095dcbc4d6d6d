"""Periodic jobs on APScheduler: the reaper (every few seconds), lock expiry and reminders (every
half minute, bot/deploy/locks.py) and retention (cron)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.config import Config, cron_trigger
from bot.deploy.locks import CHECK_SECONDS
from bot.deploy.service import DeployService

log = logging.getLogger(__name__)

APPROVAL_CHECK_SECONDS = 15.0  # unapproved deploys past approval_timeout_minutes end this late at most


class Scheduler:
    def __init__(self, config: Config, service: DeployService, *, locks: bool = True) -> None:
        """`locks=False` in a process that cannot tell Slack (the CLI): an expiry or reminder it
        found would be announced by nobody."""
        self.service = service
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_job(
            self._reap,
            IntervalTrigger(seconds=config.bot.reaper_interval_seconds),
            id="reaper",
            max_instances=1,
            coalesce=True,
        )
        if locks:
            self._scheduler.add_job(
                self._locks,
                IntervalTrigger(seconds=CHECK_SECONDS),
                id="locks",
                max_instances=1,
                coalesce=True,
            )
        self._scheduler.add_job(
            self._approvals,
            IntervalTrigger(seconds=APPROVAL_CHECK_SECONDS),
            id="approvals",
            max_instances=1,
            coalesce=True,
        )
        self._scheduler.add_job(
            self._cleanup,
            cron_trigger(config.retention.cron),
            id="retention",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=3600,
        )

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def jobs(self) -> dict[str, str]:
        return {job.id: str(job.trigger) for job in self._scheduler.get_jobs()}

    async def _reap(self) -> None:
        await _logged(self.service.reap, "reaper")

    async def _locks(self) -> None:
        await _logged(self.service.locks.tick, "lock expiry")

    async def _approvals(self) -> None:
        await _logged(self.service.approvals.expire, "approval expiry")

    async def _cleanup(self) -> None:
        try:
            result = await self.service.cleanup()
            log.info(
                "retention: %d logs cleared, %d records soft-deleted",
                result.logs_cleared,
                result.records_deleted,
            )
        except Exception:
            log.exception("retention failed")


async def _logged(job: Callable[[], Awaitable[object]], what: str) -> None:
    """Run a job; a failure is logged and the next run tries again."""
    try:
        await job()
    except Exception:
        log.exception("%s failed", what)
