"""Composition root: config -> database -> service -> scheduler -> web server (REST, health, Slack).

Also the start-up hardening every entry point (serve, console, CLI) goes through: the bot marks
itself non-dumpable, and warns where scripts could reach its secrets or could not run at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiohttp import web

from bot.app.metrics import Metrics
from bot.config import Config, ConfigError, may_access
from bot.deploy.environ import mark_non_dumpable
from bot.deploy.scheduler import Scheduler
from bot.deploy.service import DeployService
from bot.notify import Notifications
from handlers import webhooks
from handlers.rest import register_routes
from storage.db import Database
from storage.deliveries import forget_periodically

log = logging.getLogger(__name__)
NOTIFY_DRAIN_SECONDS = 5.0  # how long a closing process waits for its notices to leave


@dataclass
class Runtime:
    config: Config
    db: Database
    service: DeployService
    scheduler: Scheduler
    metrics: Metrics  # GET /metrics (bot/app/metrics.py), fed by the service's event bus
    notifications: Notifications | None = None  # the [[notify]] sinks (bot/notify/), fed by the bus
    # Slack deliveries older than ten minutes, deleted by every process (storage/deliveries.py)
    _forgetting: asyncio.Task | None = field(default=None, init=False, repr=False)

    async def start(self) -> None:
        """Migrate an empty database, end what a dead bot left running, start the jobs.
        Subscribe observers (the Slack notifier) before this, so they see those deploys end."""
        await self.service.start()
        self.scheduler.start()
        self._forgetting = asyncio.ensure_future(forget_periodically(self.db))

    async def drain(self, timeout: float, interrupt: asyncio.Event) -> None:
        """Wait until this process runs no deploy, `timeout` passes or `interrupt` is set,
        whichever comes first (call `service.drain()` first, so that nothing new starts)."""
        service = self.service
        if not service.running_ids:
            return
        log.warning(
            "draining: waiting up to %.0f s for deploys %s to finish (signal again to interrupt them)",
            timeout,
            ", ".join(f"#{i}" for i in service.running_ids),
        )
        # shielded: cancelling a wait on gathered deploy tasks would cancel the deploys themselves
        idle = asyncio.ensure_future(asyncio.shield(service.wait_idle()))
        stop = asyncio.ensure_future(interrupt.wait())
        try:
            await asyncio.wait({idle, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            idle.cancel()
            stop.cancel()

    async def close(self) -> None:
        self.scheduler.shutdown()
        if self._forgetting is not None:
            self._forgetting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._forgetting
        await self.service.close()
        if self.notifications is not None:  # after the service: deploys it interrupted are told too
            await self.notifications.close(NOTIFY_DRAIN_SECONDS)
        await self.db.dispose()


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """SIGTERM and SIGINT set the event this yields instead of ending the process, from before
    start-up on: a signal that comes while the process starts drains it once started."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        yield stop
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def settle_memory() -> None:
    """Once started: move every object made so far out of the garbage collector's sight. Start-up
    leaves hundreds of thousands of long-lived objects (modules, SQLAlchemy's and Bolt's state)
    that every full collection would walk again while requests wait: about a sixth of the CPU a
    request costs under load."""
    gc.collect()
    gc.freeze()


def check_several_processes(config: Config, what: str) -> None:
    """A process that runs no environment's scripts (or only some) needs others beside it, on one
    PostgreSQL: with SQLite the bot is one process."""
    if config.runner_environments != frozenset(config.environments) and config.database_url.startswith(
        "sqlite"
    ):
        raise ConfigError(
            f"{what} shares the work with other processes, which needs PostgreSQL (database_url); "
            "with SQLite run one `deploybot serve` that runs every environment"
        )


def runs(config: Config) -> str:
    """What this process runs, for its start-up line."""
    ran = sorted(config.runner_environments)
    return f"runs {', '.join(ran)}" if ran else "runs no deploy scripts"


def harden(config: Config) -> None:
    """Keep the bot's secrets from its scripts as far as this process can: non-dumpable, so no
    script can read /proc/<bot>/environ or its memory; a warning for each script that runs as the
    bot's own user (it can read the bot's secret files and SQLite database), and for each the
    account it runs under could not read or run (the operator's to fix, but better said now)."""
    mark_non_dumpable()
    uid = os.geteuid()
    ran = [config.environments[name] for name in sorted(config.runner_environments)]
    own = [env.name for env in ran if env.account is None or env.account.uid == uid]
    if own:
        log.warning(
            "the scripts of %s run as the bot's own user (uid %d): they can read its secret files "
            "and its SQLite database; set run_as in [bot] or per environment",
            ", ".join(own),
            uid,
        )
    for env in ran:
        if env.account is None:
            continue
        if not may_access(env.account, env.script, os.R_OK | os.X_OK):
            log.warning("environment %s: %s cannot read and run %s", env.name, env.account.user, env.script)
        elif not may_access(env.account, env.cwd, os.R_OK | os.X_OK):
            log.warning("environment %s: %s cannot enter its folder %s", env.name, env.account.user, env.cwd)


def build_runtime(
    config: Config, *, base_env: dict[str, str] | None = None, role: str = "serve", claims: bool = True
) -> Runtime:
    """Database, service and jobs, wired but not started (after `harden`). `role` and `claims`:
    see DeployService."""
    harden(config)
    db = Database(config.database_url)
    service = DeployService(config, db, base_env=base_env, role=role, claims=claims)
    # every process subscribes: each event reaches one process's bus, the one that moved the deploy
    notifications = Notifications(config) if config.notify else None
    if notifications is not None:
        service.events.subscribe(notifications.observe)
    metrics = Metrics(config, db)
    service.events.subscribe(metrics.observe)
    scheduler = Scheduler(config, service, locks=role != "cli")
    return Runtime(config, db, service, scheduler, metrics, notifications)


async def start_runtime(
    config: Config, *, base_env: dict[str, str] | None = None, role: str = "serve", claims: bool = True
) -> Runtime:
    runtime = build_runtime(config, base_env=base_env, role=role, claims=claims)
    await runtime.start()
    return runtime


def create_web_app(runtime: Runtime) -> web.Application:
    """The aiohttp application: REST API, health and metrics; the Slack endpoint is added by the
    Slack app."""
    app = web.Application(client_max_size=1024 * 1024)
    register_routes(app, runtime.service, runtime.config)
    webhooks.register(app, runtime.service)  # POST /webhooks/git, reads its own bodies up to 25 MiB
    runtime.metrics.serve(app)
    return app
