"""Composition root: config -> database -> service -> scheduler -> web server (REST, health, Slack).

Also the start-up hardening every entry point (serve, console, CLI) goes through: the bot marks
itself non-dumpable, and warns where scripts could reach its secrets or could not run at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field

from aiohttp import web

from bot.config import Config, may_access
from bot.deploy.environ import mark_non_dumpable
from bot.deploy.scheduler import Scheduler
from bot.deploy.service import DeployService
from handlers.rest import register_routes
from storage.db import Database
from storage.deliveries import forget_periodically

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    config: Config
    db: Database
    service: DeployService
    scheduler: Scheduler
    # Slack deliveries older than ten minutes, deleted by every process (storage/deliveries.py)
    _forgetting: asyncio.Task | None = field(default=None, init=False, repr=False)

    async def start(self) -> None:
        """Migrate an empty database, end what a dead bot left running, start the jobs.
        Subscribe observers (the Slack notifier) before this, so they see those deploys end."""
        await self.service.start()
        self.scheduler.start()
        self._forgetting = asyncio.ensure_future(forget_periodically(self.db))

    async def close(self) -> None:
        self.scheduler.shutdown()
        if self._forgetting is not None:
            self._forgetting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._forgetting
        await self.service.close()
        await self.db.dispose()


def harden(config: Config) -> None:
    """Keep the bot's secrets from its scripts as far as this process can: non-dumpable, so no
    script can read /proc/<bot>/environ or its memory; a warning for each script that runs as the
    bot's own user (it can read the bot's secret files and SQLite database), and for each the
    account it runs under could not read or run (the operator's to fix, but better said now)."""
    mark_non_dumpable()
    uid = os.geteuid()
    own = [name for name, env in config.environments.items() if env.account is None or env.account.uid == uid]
    if own:
        log.warning(
            "the scripts of %s run as the bot's own user (uid %d): they can read its secret files "
            "and its SQLite database; set run_as in [bot] or per environment",
            ", ".join(own),
            uid,
        )
    for name, env in config.environments.items():
        if env.account is None:
            continue
        if not may_access(env.account, env.script, os.R_OK | os.X_OK):
            log.warning("environment %s: %s cannot read and run %s", name, env.account.user, env.script)
        elif not may_access(env.account, env.cwd, os.R_OK | os.X_OK):
            log.warning("environment %s: %s cannot enter its folder %s", name, env.account.user, env.cwd)


def build_runtime(config: Config, *, base_env: dict[str, str] | None = None) -> Runtime:
    """Database, service and jobs, wired but not started (after `harden`)."""
    harden(config)
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
