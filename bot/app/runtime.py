"""Composition root: config -> database -> service -> scheduler -> web server (REST, health, Slack)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from aiohttp import web

from bot.config import Config
from bot.deploy.scheduler import Scheduler
from bot.deploy.service import DeployService
from handlers.rest import register_routes
from storage.db import Database

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    db: Database
    service: DeployService
    scheduler: Scheduler

    async def start(self) -> None:
        """Migrate an empty database, end what a dead bot left running, start the jobs.
        Subscribe observers (the Slack notifier) before this, so they see those deploys end."""
        await self.service.start()
        self.scheduler.start()

    async def close(self) -> None:
        self.scheduler.shutdown()
        await self.service.close()
        await self.db.dispose()


def build_runtime(config: Config, *, base_env: dict[str, str] | None = None) -> Runtime:
    """Database, service and jobs, wired but not started."""
    db = Database(config.database_url)
    service = DeployService(config, db, base_env=base_env)
    return Runtime(config, db, service, Scheduler(config, service))


async def start_runtime(config: Config, *, base_env: dict[str, str] | None = None) -> Runtime:
    runtime = build_runtime(config, base_env=base_env)
    await runtime.start()
    return runtime


def create_web_app(runtime: Runtime) -> web.Application:
    """The aiohttp application: REST API and health; the Slack endpoint is added by the Slack app."""
    app = web.Application(client_max_size=1024 * 1024)
    register_routes(app, runtime.service, runtime.config)
    return app
