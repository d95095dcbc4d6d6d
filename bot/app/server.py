"""`deploybot serve`: the deploy service, the REST API and health, and the Slack app, in one process.

Socket Mode when SLACK_APP_TOKEN is set (no public URL needed; the HTTP server still serves the
REST API and /healthz), else HTTP mode with Slack's requests at POST /slack/events.

SIGTERM or SIGINT drains it: it stops taking requests (so a load balancer or Slack sends them to
another process) and lets the deploys it runs finish, for up to `drain_timeout_minutes`; a second
signal, or the timeout, ends those still running as interrupted. Then the notifier writes their
final cards, and the server and the database close. A rolling upgrade never kills a deploy.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from dataclasses import dataclass

from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

from bot.app.runtime import (
    Runtime,
    build_runtime,
    check_several_processes,
    create_web_app,
    runs,
    settle_memory,
    stop_signals,
)
from bot.app.slack_app import SLACK_PATH, SlackBot, create_slack_bot
from bot.config import Config, ConfigError
from bot.slack.client import close_client, create_client
from bot.slack.notifier import Timing

log = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 10.0


@dataclass
class Server:
    runtime: Runtime
    slack: SlackBot
    runner: web.AppRunner
    socket: AsyncSocketModeHandler | None
    listening: bool = True

    @property
    def port(self) -> int:
        return self.runner.addresses[0][1]

    async def stop_listening(self) -> None:
        """Take no more requests; let those already acked finish their work."""
        if self.listening:
            self.listening = False
            if self.socket is not None:
                await self.socket.close_async()
            await self.runner.cleanup()
        await self.slack.finish_listeners(SHUTDOWN_SECONDS)

    async def drain(self, timeout: float, interrupt: asyncio.Event) -> None:
        """Start no more deploys and stop listening, then wait until this process runs no
        deploy, `timeout` passes or `interrupt` is set, whichever comes first."""
        self.runtime.service.drain()
        await self.stop_listening()
        await self.runtime.drain(timeout, interrupt)

    async def close(self) -> None:
        await self.stop_listening()
        await self.runtime.service.close()  # deploys still running end as interrupted...
        await self.slack.close(SHUTDOWN_SECONDS)  # ...and their final state reaches Slack
        await self.runtime.close()


def check_secrets(config: Config) -> None:
    secrets = config.secrets
    if not secrets.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set (the bot's xoxb- token)")
    if not secrets.slack_app_token and not secrets.slack_signing_secret:
        raise ConfigError("set SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)")


async def start_server(
    config: Config,
    host: str,
    port: int,
    *,
    base_env: dict[str, str] | None = None,
    timing: Timing | None = None,
) -> Server:
    """Start everything and return once it listens (port 0 picks a free port: `server.port`).
    A config that runs no environment (`serve --no-runner`) serves without running scripts."""
    check_secrets(config)
    check_several_processes(config, "serve --no-runner (or --environments)")
    runtime = build_runtime(config, base_env=base_env)
    runner: web.AppRunner | None = None
    client = None
    try:
        web_app = create_web_app(runtime)
        client = create_client(config)
        runtime.metrics.watch_slack(client)  # before the notifier copies its retry handlers
        socket_mode = bool(config.secrets.slack_app_token)
        slack = create_slack_bot(
            config,
            runtime.service,
            client,
            signing_secret=None if socket_mode else config.secrets.slack_signing_secret,
            timing=timing,
        )
        if not socket_mode:
            slack.mount(web_app, SLACK_PATH)
        await runtime.start()  # after the notifier subscribed: cards of reaped deploys get their end
        runner = web.AppRunner(web_app, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        socket = None
        if socket_mode:
            socket = AsyncSocketModeHandler(slack.app, config.secrets.slack_app_token, web_client=client)
            await socket.connect_async()
    except BaseException:
        if runner is not None:
            await runner.cleanup()
        if client is not None:
            await close_client(client)
        await runtime.close()
        raise
    return Server(runtime, slack, runner, socket)


async def serve(config: Config, host: str, port: int) -> int:
    with stop_signals() as stop:
        try:
            server = await start_server(config, host, port)
        except ConfigError as exc:
            print(f"deploybot: {exc}", file=sys.stderr)
            return 2
        settle_memory()
        mode = "Socket Mode" if server.socket else f"HTTP mode, Slack at {SLACK_PATH}"
        print(f"deploybot listening on http://{host}:{server.port} ({mode}, {runs(config)})", file=sys.stderr)
        try:
            await stop.wait()
            stop.clear()  # a second signal interrupts the drain
            await server.drain(config.bot.drain_timeout_minutes * 60, stop)
        finally:
            await server.close()
    return 0
