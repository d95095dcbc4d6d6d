"""The Slack app: the Web API client, the Bolt app with its listeners, and the notifier, wired to one
deploy service. Both `deploybot serve` and `deploybot console` build it here."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

import handlers
from bot.config import Config
from bot.slack.notifier import SlackNotifier, Timing
from bot.slack.permissions import Admins
from bot.deploy.service import DeployService

SLACK_PATH = "/slack/events"
WEB_API_TIMEOUT = 15


class _AnyServerErrorRetryHandler(AsyncServerErrorRetryHandler):
    """slack_sdk's handler retries only 500 and 503; a 502 or 504 from a proxy is just as passing."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return response is not None and response.status_code >= 500


def retry_handlers() -> list[AsyncRetryHandler]:
    return [
        AsyncConnectionErrorRetryHandler(
            max_retry_count=2,
            error_types=[
                aiohttp.ServerConnectionError,
                aiohttp.ClientOSError,  # includes connection refused and reset by peer
                aiohttp.ServerTimeoutError,
            ],
        ),
        AsyncRateLimitErrorRetryHandler(max_retry_count=5),
        _AnyServerErrorRetryHandler(max_retry_count=2),
    ]


def create_client(config: Config, *, base_url: str | None = None) -> AsyncWebClient:
    """The Web API client every Slack call goes through, with retries for 429 (after Retry-After),
    5xx and connection errors. Its HTTP session keeps connections to Slack open between calls
    (without one, slack_sdk opens a new connection per call); `SlackBot.close` closes it."""
    url = base_url or config.secrets.slack_api_url
    if not url.endswith("/"):
        url += "/"
    return AsyncWebClient(
        token=config.secrets.slack_bot_token or None,
        base_url=url,
        timeout=WEB_API_TIMEOUT,
        retry_handlers=retry_handlers(),
        session=aiohttp.ClientSession(),
    )


async def close_client(client: AsyncWebClient) -> None:
    if client.session is not None and not client.session.closed:
        await client.session.close()


@dataclass
class SlackContext:
    """What listeners need, handed to each of them by name (`ctx`)."""

    config: Config
    service: DeployService
    admins: Admins
    notifier: SlackNotifier
    tasks: set[asyncio.Future] = field(default_factory=set)  # listener work after the ack

    @property
    def locale(self) -> str:
        return self.config.locale


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
        """Write what is still owed to Slack (final cards), then stop the notifier."""
        await self.notifier.close(timeout)
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
    notifier = SlackNotifier(config, service, client, timing=timing)
    service.subscribe(notifier.observe)
    context = SlackContext(config, service, admins, notifier)
    handlers.register(app, context)
    return SlackBot(app, notifier, admins, context)
