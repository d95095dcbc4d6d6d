"""`deploybot worker`: a process that claims and runs deploys, without serving Slack or REST.

For scripts that must run on another host than the bot's `serve` processes (DESIGN §12): it shares
their PostgreSQL, claims the deploys of the environments it runs (all, or `--environments a,b`),
keeps their cards up to date in Slack (so it needs SLACK_BOT_TOKEN, not the signing secret or app
token), and runs the jobs every process runs (reaper, retention). SIGTERM drains it like `serve`.
With `--port` it also answers `GET /metrics` (and nothing else) for Prometheus to scrape.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from aiohttp import web

from bot.app.runtime import Runtime, build_runtime, runs, settle_memory, stop_signals
from bot.config import Config, ConfigError
from bot.slack.client import close_client, create_client
from bot.slack.notifier import SlackNotifier, Timing
from bot.slack.permissions import Admins

SHUTDOWN_SECONDS = 10.0


@dataclass
class Worker:
    runtime: Runtime
    notifier: SlackNotifier
    metrics_site: web.AppRunner | None = None  # GET /metrics, with --port

    @property
    def port(self) -> int | None:
        return self.metrics_site.addresses[0][1] if self.metrics_site is not None else None

    async def drain(self, timeout: float, interrupt: asyncio.Event) -> None:
        self.runtime.service.drain()
        await self.runtime.drain(timeout, interrupt)

    async def close(self) -> None:
        await self.runtime.service.close()  # deploys still running end as interrupted...
        await self.notifier.close(SHUTDOWN_SECONDS)  # ...and their final state reaches Slack
        await close_client(self.notifier.client)
        if self.metrics_site is not None:
            await self.metrics_site.cleanup()
        await self.runtime.close()


def check_worker(config: Config) -> None:
    if not config.secrets.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set: a worker keeps the cards of its deploys up to date")
    if config.database_url.startswith("sqlite"):
        raise ConfigError(
            "deploybot worker shares the work with `deploybot serve` processes on one PostgreSQL "
            "(database_url); with SQLite run one `deploybot serve`"
        )
    if not config.runner_environments:
        raise ConfigError("deploybot worker: no environment to run")


async def start_worker(
    config: Config,
    *,
    base_env: dict[str, str] | None = None,
    timing: Timing | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
) -> Worker:
    """A started worker; with `port` (0: any free one) it answers GET /metrics there."""
    check_worker(config)
    runtime = build_runtime(config, base_env=base_env, role="worker")
    client = create_client(config)
    runtime.metrics.watch_slack(client)  # before the notifier copies the client's retry handlers
    notifier = SlackNotifier(config, runtime.service, client, Admins(config, client), timing=timing)
    runtime.service.events.subscribe(notifier.observe)
    worker = Worker(runtime, notifier)
    try:
        await runtime.start()
        if port is not None:
            app = web.Application()
            runtime.metrics.serve(app)
            worker.metrics_site = web.AppRunner(app, handle_signals=False)
            await worker.metrics_site.setup()
            await web.TCPSite(worker.metrics_site, host, port).start()
    except BaseException:
        await worker.close()
        raise
    return worker


async def work(config: Config, host: str = "127.0.0.1", port: int | None = None) -> int:
    with stop_signals() as stop:
        try:
            worker = await start_worker(config, host=host, port=port)
        except ConfigError as exc:
            print(f"deploybot: {exc}", file=sys.stderr)
            return 2
        settle_memory()
        metrics = f", metrics at http://{host}:{worker.port}/metrics" if worker.port else ""
        print(
            f"deploybot worker {worker.runtime.service.runner_id} ({runs(config)}{metrics})", file=sys.stderr
        )
        try:
            await stop.wait()
            stop.clear()  # a second signal interrupts the drain
            await worker.drain(config.bot.drain_timeout_minutes * 60, stop)
        finally:
            await worker.close()
    return 0
