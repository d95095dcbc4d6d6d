"""Periodic jobs on APScheduler: the reaper (every few seconds) and retention (cron)."""

from __future__ import annotations

import logging
from datetime import UTC

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.config import Config, cron_trigger
from bot.deploy.service import DeployService

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, config: Config, service: DeployService) -> None:
        self.service = service
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_job(
            self._reap,
            IntervalTrigger(seconds=config.bot.reaper_interval_seconds),
            id="reaper",
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
        try:
            await self.service.reap()
        except Exception:
            log.exception("reaper failed")

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
