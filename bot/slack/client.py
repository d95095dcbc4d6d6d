"""The Web API client every Slack call goes through: retries for 429 (after Retry-After), any 5xx
and connection errors, on one pooled HTTP session. The notifier's calls use a twin without the 429
retries (`without_rate_limit_retries`): its outbox paces them and owns their 429s."""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
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

from bot.config import Config

# Where Slack's response_urls point (hooks.slack.com; GovSlack's hooks.slack-gov.com).
SLACK_DOMAINS = ("slack.com", "slack-gov.com")

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


def without_rate_limit_retries(client: AsyncWebClient) -> AsyncWebClient:
    """The same client (token, URL, timeout, pooled session) that leaves 429s to its caller: a
    caller that paces itself (bot/slack/outbox.py) pauses a whole budget on one 429, where the
    retry handler would send every request back into the limit on its own."""
    return AsyncWebClient(
        token=client.token,
        base_url=client.base_url,
        timeout=client.timeout,
        session=client.session,
        logger=client.logger,
        retry_handlers=[
            handler
            for handler in client.retry_handlers
            if not isinstance(handler, AsyncRateLimitErrorRetryHandler)
        ],
    )


async def close_client(client: AsyncWebClient) -> None:
    if client.session is not None and not client.session.closed:
        await client.session.close()


def is_slack_url(url: str | None, api_url: str) -> bool:
    """Whether a response_url from a payload may be answered: HTTPS on Slack's own domains, or the
    host the Web API client talks to (a gateway or a local Slack). Anything else could send a
    user's answer, with the bot's words in it, wherever a forged payload says."""
    if not url:
        return False
    try:
        parts, api = urlsplit(url), urlsplit(api_url)
        host = parts.hostname or ""
    except ValueError:
        return False
    if host and host == api.hostname and parts.scheme in ("http", "https"):
        return True
    return parts.scheme == "https" and any(host == d or host.endswith("." + d) for d in SLACK_DOMAINS)
