"""The Slack app factory: the Bolt app with its listeners and the notifier, wired to one deploy
service. Both `deploybot serve` and `deploybot console` build it here."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

import handlers
from bot.config import Config
from bot.deploy.service import DeployService
from bot.slack.client import close_client
from bot.slack.notifier import SlackNotifier, Timing
from bot.slack.permissions import Admins
from handlers.context import SlackContext
from storage.deliveries import DeliveryGuard

SLACK_PATH = "/slack/events"


@dataclass
class SlackBot:
    app: AsyncApp
    notifier: SlackNotifier
    admins: Admins
    context: SlackContext

    def mount(self, web_app: web.Application, path: str = SLACK_PATH) -> None:
        """Serve Slack's requests (commands, interactivity, events) at `path` of an aiohttp app."""
        web_app.router.add_post(path, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        response = await self.app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(response)

    async def finish_listeners(self, timeout: float = 10.0) -> None:
        """Let listeners finish the work they do after their ack (a deploy being started)."""
        if self.context.tasks:
            await asyncio.wait(list(self.context.tasks), timeout=timeout)

    async def close(self, timeout: float = 10.0) -> None:
        """Write what is still owed to Slack (final cards), then stop the notifier, and give back
        the connection the deliveries guard keeps."""
        await self.notifier.close(timeout)
        if self.context.deliveries is not None:
            await self.context.deliveries.close(timeout)
        await close_client(self.app.client)


def create_slack_bot(
    config: Config,
    service: DeployService,
    client: AsyncWebClient,
    *,
    signing_secret: str | None,
    timing: Timing | None = None,
) -> SlackBot:
    """Build the Bolt app around `service`. With `signing_secret=None` requests are not
    signature-checked (Socket Mode and the console, where nothing comes over HTTP)."""
    app = AsyncApp(
        name="deploybot",
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=signing_secret is not None,
        # Listeners return once they have acked and work on in tasks of their own (handlers.guarded).
        process_before_response=True,
    )
    admins = Admins(config, client)
    notifier = SlackNotifier(config, service, client, admins, timing=timing)
    service.events.subscribe(notifier.observe)
    context = SlackContext(config, service, admins, notifier, deliveries=DeliveryGuard(service.db))
    handlers.register(app, context)
    return SlackBot(app, notifier, admins, context)
