"""What `GET /metrics` shows Prometheus (DESIGN §10), and where each figure comes from.

One `Metrics` per runtime, on a registry of its own (several runtimes in one process never share a
figure). Counters and histograms are this process's: deploys it saw end (from the event bus, so the
engine imports nothing of this), their durations and stored log bytes, the Slack Web API requests
it sent (a retry handler that only watches, on the client every Slack call goes through), and the
latency of the HTTP requests it served (a middleware). The gauges of running and waiting deploys
are the database's, the same from every process: read at each scrape.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Config
from bot.deploy.events import DeployFinished
from handlers.rest import WWW_AUTHENTICATE, token_name
from storage import stats
from storage.db import Database

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
DATABASE_SECONDS = 5.0  # a scrape answers without the gauges rather than hang on a stuck database
DEPLOY_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SLACK_METHOD = re.compile(r"[A-Za-z]+(\.[A-Za-z]+)+")  # chat.postMessage; anything else is "other"


class Metrics:
    """The figures of one runtime and the `/metrics` endpoint that shows them."""

    def __init__(self, config: Config, db: Database) -> None:
        self._config = config
        self._db = db
        self._token = config.bot.metrics_token
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        self.deploys = Counter(
            "deploybot_deploys",
            "Deploys this process saw end, by environment and final status",
            ["environment", "status"],
            registry=registry,
        )
        self.deploy_seconds = Histogram(
            "deploybot_deploy_duration_seconds",
            "How long the deploys this process saw end ran, from start to end",
            ["environment"],
            buckets=DEPLOY_BUCKETS,
            registry=registry,
        )
        self.log_bytes = Counter(
            "deploybot_log_bytes",
            "Log bytes stored by the deploys this process saw end",
            ["environment"],
            registry=registry,
        )
        self.slack_calls = Counter(
            "deploybot_slack_api_calls",
            "Slack Web API requests this process sent (each retry counts), by method and outcome",
            ["method", "outcome"],
            registry=registry,
        )
        self.request_seconds = Histogram(
            "deploybot_http_request_duration_seconds",
            "Time to answer the HTTP requests this process served (REST, Slack, health, metrics)",
            ["route", "method"],
            registry=registry,
        )
        self.current = Gauge(
            "deploybot_deploys_current",
            "Deploys running or waiting now (from the database, for every process)",
            ["environment", "status"],
            registry=registry,
        )
        self.database_up = Gauge(
            "deploybot_metrics_database_up",
            "1 when the last scrape could read the deploy gauges from the database",
            registry=registry,
        )

    # --- the sources ---------------------------------------------------------------------------

    def observe(self, event: object) -> None:
        """An event-bus observer: a deploy that ended counts with its duration and log size."""
        if not isinstance(event, DeployFinished):
            return
        deploy = event.deploy
        self.deploys.labels(deploy.environment, deploy.status).inc()
        if deploy.started_at is not None and deploy.completed_at is not None:
            seconds = (deploy.completed_at - deploy.started_at).total_seconds()
            self.deploy_seconds.labels(deploy.environment).observe(max(seconds, 0.0))
        self.log_bytes.labels(deploy.environment).inc(max(deploy.log_size or 0, 0))

    def watch_slack(self, client: AsyncWebClient) -> None:
        """Count every request `client` sends. Call it before anything copies the client's retry
        handlers (bot/slack/client.py `without_rate_limit_retries`): the copies count too."""
        client.retry_handlers.insert(0, _SlackCallCounter(self.slack_calls))

    def serve(self, app: web.Application) -> None:
        """Time every request `app` serves and answer `GET /metrics` on it."""
        app.middlewares.insert(0, self._timed)
        app.router.add_get(METRICS_PATH, self.handle)

    @web.middleware
    async def _timed(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "unmatched"
            method = request.method if request.method in HTTP_METHODS else "other"
            self.request_seconds.labels(route, method).observe(time.perf_counter() - started)

    # --- the endpoint --------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.Response:
        if self._token and token_name(request.headers.get("Authorization"), {self._token: "metrics"}) is None:
            return web.Response(status=401, text="401: Unauthorized\n", headers=WWW_AUTHENTICATE)
        counts = await self._read_current()
        self._set_current(counts)
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _read_current(self) -> dict[tuple[str, str], int] | None:
        try:
            async with asyncio.timeout(DATABASE_SECONDS), self._db.session() as session:
                return await stats.count_current(session)
        except Exception:
            log.warning("metrics: could not read the deploy gauges from the database", exc_info=True)
            return None

    def _set_current(self, counts: dict[tuple[str, str], int] | None) -> None:
        """Every configured environment shows each status (0 when none); nothing when unread."""
        self.current.clear()
        self.database_up.set(0 if counts is None else 1)
        if counts is None:
            return
        for environment in self._config.environments:
            for status in stats.CURRENT_STATUSES:
                self.current.labels(environment, status.value).set(0)
        for (environment, status), n in counts.items():
            self.current.labels(environment, status).set(n)


class _SlackCallCounter(AsyncRetryHandler):
    """A retry handler that never retries: slack_sdk shows it every response and connection error
    of every attempt, before the handlers that do retry (it stands first)."""

    def __init__(self, calls: Counter) -> None:
        super().__init__(max_retry_count=0)
        self._calls = calls

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        self._calls.labels(_slack_method(request.url), _outcome(response, error)).inc()
        return False


def _slack_method(url: str) -> str:
    method = urlsplit(url).path.rsplit("/", 1)[-1]
    return method if SLACK_METHOD.fullmatch(method) else "other"


def _outcome(response: HttpResponse | None, error: Exception | None) -> str:
    if error is not None or response is None:
        return "error"
    if response.status_code == 429 or (
        isinstance(response.body, dict) and response.body.get("error") == "ratelimited"
    ):
        return "ratelimited"
    if response.status_code >= 400:
        return "error"
    if isinstance(response.body, dict):
        return "ok" if response.body.get("ok") else "error"
    return "ok"
