"""Everything the bot says in channels about a deploy: its card, its thread, its log file, App Home.

The deploy service calls `observe` inline while a deploy runs, so `observe` only records the newest
state and wakes the deploy's own worker; the worker does the Web API calls. Per deploy the worker:

- posts the card once (in the channel the deploy was asked from, or `notify_channel` for REST
  deploys) and remembers it with `service.attach_message`;
- posts one thread reply per step, in order;
- edits the card at most once a second, always with the newest state (a running card is also
  refreshed every few seconds so its elapsed time moves);
- at the end posts the final reply and, unless the deploy succeeded, uploads the whole log.

Slack failing never reaches the service. The client retries 429s (honouring Retry-After), 5xx and
connection errors; if Slack is still down the worker waits, backing off, and then writes the newest
state: the card always ends in the deploy's final state once Slack answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Config, Environment
from bot.deploy.events import DeployEvent, DeployFinished, StepChanged
from bot.deploy.progress import Step
from bot.i18n import t
from bot.slack.blocks import card, home, thread
from bot.slack.blocks.messages import Message
from bot.slack.permissions import Admins
from storage.models import Deploy, Status, utcnow

if TYPE_CHECKING:
    from bot.deploy.service import DeployService

log = logging.getLogger(__name__)

# Slack errors that say "try later" rather than "this will never work".
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
MAX_LOG_UPLOAD = 50 * 1024 * 1024
MAX_UNKNOWN_FAILURES = 5
HOME_RECENT = 10


@dataclass(frozen=True)
class CardPosted:
    channel: str
    ts: str


@dataclass(frozen=True)
class CardFailed:
    channel: str
    error: str


CardOutcome = CardPosted | CardFailed


@dataclass(frozen=True)
class Timing:
    update_interval: float = 1.0  # at most one chat.update per second per message
    tick_seconds: float = 10.0  # refresh a running card this often even without news (elapsed time)
    retry_initial: float = 1.0
    retry_cap: float = 30.0
    home_interval: float = 2.0  # App Home republished at most this often


class SlackUnavailable(Exception):
    """Slack did not answer usefully; the same work is tried again later."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, SlackApiError):
        response = exc.response
        status = getattr(response, "status_code", None) or getattr(response, "status", None) or 200
        error = response.get("error") if hasattr(response, "get") else None
        return status == 429 or status >= 500 or error in RETRYABLE_ERRORS
    return isinstance(exc, SlackRequestError | aiohttp.ClientError | TimeoutError | ConnectionError)


def slack_error(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError) and hasattr(exc.response, "get"):
        return str(exc.response.get("error") or "")
    return type(exc).__name__


class _Feed:
    """What the notifier knows about one deploy and what it has already told Slack."""

    def __init__(self, deploy: Deploy, channel: str, loop: asyncio.AbstractEventLoop) -> None:
        self.deploy = deploy
        self.channel = channel
        self.ts: str | None = deploy.slack_ts if deploy.slack_channel == channel else None
        self.steps: deque[Step] = deque()
        self.final: DeployFinished | None = None
        self.final_sent = False
        self.log_sent = False
        self.version = 0
        self.sent_version = -1
        self.last_update = float("-inf")  # the last chat.update (rate limit)
        self.last_write = float("-inf")  # the last post or update (elapsed-time refresh)
        self.wake = asyncio.Event()
        self.card: asyncio.Future[CardOutcome | None] = loop.create_future()
        self.estimate: float | None = None
        self.estimate_loaded = False
        self.rollback_target: Deploy | None = None
        self.rollback_loaded = False
        self.dead = False  # the channel refused the card: nothing more to say there
        if self.ts:
            self._settle(CardPosted(channel, self.ts))

    def _settle(self, outcome: CardOutcome | None) -> None:
        if not self.card.done():
            self.card.set_result(outcome)

    @property
    def finished(self) -> bool:
        if self.dead:
            return True
        return (
            self.final is not None
            and self.final_sent
            and self.log_sent
            and self.sent_version == self.version
            and not self.steps
        )


class SlackNotifier:
    def __init__(
        self,
        config: Config,
        service: DeployService,
        client: AsyncWebClient,
        admins: Admins,
        *,
        timing: Timing | None = None,
    ) -> None:
        self.config = config
        self.service = service
        self.client = client
        self.admins = admins
        self.locale = config.locale
        self.timing = timing or Timing()
        self._feeds: dict[int, _Feed] = {}
        self._workers: set[asyncio.Task] = set()
        self._home_viewers: set[str] = set()
        self._home_dirty: asyncio.Event | None = None
        self._home_task: asyncio.Task | None = None
        self._closing = False

    # --- the observer (called inline by the service: must return at once) -------------------

    def observe(self, event: DeployEvent) -> None:
        deploy = event.deploy
        feed = self._feeds.get(deploy.id) or self._open_feed(deploy)
        if feed is not None:
            feed.deploy = deploy
            feed.version += 1
            if isinstance(event, StepChanged):
                feed.steps.append(event.step)
            if isinstance(event, DeployFinished):
                feed.final = event
            feed.wake.set()
        self._home_changed()

    def _open_feed(self, deploy: Deploy) -> _Feed | None:
        """A feed and its worker for a deploy that has a channel to be shown in, else None."""
        channel = self._channel_for(deploy)
        if channel is None:
            return None
        loop = asyncio.get_running_loop()
        feed = _Feed(deploy, channel, loop)
        self._feeds[deploy.id] = feed
        task = loop.create_task(self._work(feed), name=f"slack-deploy-{deploy.id}")
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)
        return feed

    def _channel_for(self, deploy: Deploy) -> str | None:
        if deploy.slack_channel:
            return deploy.slack_channel
        if deploy.source == "api" and self.config.bot.notify_channel:
            return self.config.bot.notify_channel
        return None

    # --- what listeners ask ------------------------------------------------------------------

    async def card_outcome(self, deploy_id: int, timeout: float = 10.0) -> CardOutcome | None:
        """How posting the card of a deploy this process just started went: posted, refused by
        the channel, or None (no channel, still unknown after `timeout`, or not ours)."""
        feed = self._feeds.get(deploy_id)
        if feed is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(feed.card), timeout)
        except TimeoutError:
            return None

    async def card_context(self, deploy: Deploy) -> card.CardContext:
        """What a card of `deploy` needs besides the row (for cards shown on request)."""
        estimate = None
        if deploy.state.is_active and not deploy.step_total:
            estimate = await self.service.estimate(deploy.environment)
        target = None
        if deploy.state is Status.SUCCESS:
            target = await self.service.rollback_target_for(deploy)
        return card.CardContext(
            env=self.config.environments.get(deploy.environment),
            now=utcnow(),
            estimate=estimate,
            rollback_target=target,
        )

    async def wait_idle(self) -> None:
        """Wait until every deploy's card, thread and file are written (tests, shutdown)."""
        while self._workers:
            await asyncio.gather(*list(self._workers), return_exceptions=True)

    async def close(self, timeout: float = 10.0) -> None:
        """Give the workers a moment to write final states, then stop them."""
        self._closing = True
        if self._workers:
            await asyncio.wait(list(self._workers), timeout=timeout)
        tasks = [*self._workers, *([self._home_task] if self._home_task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- one deploy ---------------------------------------------------------------------------

    async def _work(self, feed: _Feed) -> None:
        backoff = self.timing.retry_initial
        unknown_failures = 0
        try:
            while True:
                feed.wake.clear()
                try:
                    await self._sync(feed)
                except SlackUnavailable as exc:
                    log.info(
                        "deploy #%s: Slack unavailable (%s); retrying in %.1fs", feed.deploy.id, exc, backoff
                    )
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.timing.retry_cap)
                    continue
                except Exception:
                    unknown_failures += 1
                    log.exception("deploy #%s: notifying Slack failed", feed.deploy.id)
                    if unknown_failures >= MAX_UNKNOWN_FAILURES:
                        return
                    await asyncio.sleep(backoff)
                    continue
                backoff = self.timing.retry_initial
                unknown_failures = 0
                if feed.finished:
                    return
                await self._wait(feed)
        finally:
            feed._settle(None)
            if self._feeds.get(feed.deploy.id) is feed:
                del self._feeds[feed.deploy.id]

    async def _wait(self, feed: _Feed) -> None:
        now = time.monotonic()
        if feed.sent_version < feed.version:
            timeout = feed.last_update + self.timing.update_interval - now
        elif feed.deploy.state.is_active:
            timeout = feed.last_write + self.timing.tick_seconds - now
        else:
            timeout = None
        if timeout is not None and timeout <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(feed.wake.wait(), timeout)

    async def _sync(self, feed: _Feed) -> None:
        """Bring Slack up to date with the feed, as far as the update interval allows."""
        await self._load_context(feed)
        if feed.ts is None:
            await self._post_card(feed)
            if feed.dead:
                return
        while feed.steps:
            step = feed.steps[0]
            await self._thread_reply(feed, thread.step_reply(feed.deploy, step, self.locale))
            feed.steps.popleft()
        if feed.final is not None and not feed.final_sent:
            # The card shows the end before the reply that notifies the deployer announces it.
            await self._update_card(feed, wait=True)
            context = self._context(feed)
            message = thread.final_reply(feed.deploy, context, feed.final.tail, self.locale)
            failed = feed.deploy.state is not Status.SUCCESS
            await self._thread_reply(feed, message, broadcast=failed)
            feed.final_sent = True
        if feed.final is not None and not feed.log_sent:
            if feed.deploy.state is not Status.SUCCESS:
                await self._upload_log(feed)
            feed.log_sent = True
        await self._update_card(feed)

    async def _load_context(self, feed: _Feed) -> None:
        deploy = feed.deploy
        if not feed.estimate_loaded and not deploy.step_total:
            feed.estimate = await self.service.estimate(deploy.environment)
            feed.estimate_loaded = True
        if not feed.rollback_loaded and deploy.state is Status.SUCCESS:
            feed.rollback_target = await self.service.rollback_target_for(deploy)
            feed.rollback_loaded = True

    def _context(self, feed: _Feed) -> card.CardContext:
        return card.CardContext(
            env=self.config.environments.get(feed.deploy.environment),
            now=utcnow(),
            estimate=feed.estimate,
            rollback_target=feed.rollback_target,
        )

    async def _post_card(self, feed: _Feed) -> None:
        version = feed.version
        message = card.deploy_card(feed.deploy, self._context(feed), self.locale)
        try:
            response = await self.client.chat_postMessage(
                channel=feed.channel, unfurl_links=False, unfurl_media=False, **message.as_kwargs()
            )
        except Exception as exc:
            if is_transient(exc):
                raise SlackUnavailable(slack_error(exc)) from exc
            error = slack_error(exc)
            log.warning("deploy #%s: cannot post its card in %s: %s", feed.deploy.id, feed.channel, error)
            feed.dead = True
            feed._settle(CardFailed(feed.channel, error))
            return
        feed.channel = response.get("channel") or feed.channel
        feed.ts = response["ts"]
        feed.sent_version = version
        # The once-a-second limit is on chat.update; posting is not an update, so the first
        # update may follow at once (a quick deploy shows its outcome without waiting).
        feed.last_write = time.monotonic()
        feed._settle(CardPosted(feed.channel, feed.ts))
        try:
            await self.service.attach_message(feed.deploy.id, feed.channel, feed.ts)
        except Exception:  # the card works without it; only another process could not find it
            log.exception("deploy #%s: could not remember its card", feed.deploy.id)

    async def _update_card(self, feed: _Feed, *, wait: bool = False) -> None:
        """Update the card if it is behind (or its elapsed time is due), at most once per update
        interval; with `wait`, wait for the interval instead of leaving it for later."""
        now = time.monotonic()
        stale = feed.sent_version < feed.version
        ticking = feed.deploy.state.is_active and now - feed.last_write >= self.timing.tick_seconds
        if not (stale or ticking):
            return
        early = feed.last_update + self.timing.update_interval - now
        if early > 0:
            if not wait:
                return
            await asyncio.sleep(early)
        version = feed.version
        message = card.deploy_card(feed.deploy, self._context(feed), self.locale)
        await self._call(
            feed,
            "chat.update",
            self.client.chat_update(channel=feed.channel, ts=feed.ts, **message.as_kwargs()),
        )
        feed.sent_version = version
        feed.last_update = feed.last_write = time.monotonic()

    async def _thread_reply(self, feed: _Feed, message: Message, *, broadcast: bool = False) -> None:
        kwargs = {"reply_broadcast": True} if broadcast else {}
        await self._call(
            feed,
            "chat.postMessage",
            self.client.chat_postMessage(
                channel=feed.channel, thread_ts=feed.ts, unfurl_links=False, **kwargs, **message.as_kwargs()
            ),
        )

    async def _upload_log(self, feed: _Feed) -> None:
        deploy = feed.deploy
        data = await self._whole_log(deploy.id)
        if not data:
            return
        await self._call(
            feed,
            "files_upload_v2",
            self.client.files_upload_v2(
                channel=feed.channel,
                thread_ts=feed.ts,
                filename=f"deploy-{deploy.id}.log",
                title=t(self.locale, "cmd.log_file_title", deploy_id=deploy.id),
                content=data,
            ),
        )

    async def _whole_log(self, deploy_id: int) -> bytes:
        """The log as stored; past MAX_LOG_UPLOAD only its end (Slack takes big files, memory is
        the limit here)."""
        parts: deque[bytes] = deque()
        size = 0
        async for chunk in self.service.iter_log(deploy_id):
            parts.append(chunk)
            size += len(chunk)
            while size - len(parts[0]) >= MAX_LOG_UPLOAD:
                size -= len(parts.popleft())
        return b"".join(parts)[-MAX_LOG_UPLOAD:]

    async def _call(self, feed: _Feed, method: str, call: Awaitable) -> None:
        """Await one Web API call: transient failures are retried later, others are logged and
        the message dropped (retrying a message Slack rejects would never end)."""
        try:
            await call
        except Exception as exc:
            if is_transient(exc):
                raise SlackUnavailable(f"{method}: {slack_error(exc)}") from exc
            log.warning("deploy #%s: %s failed: %s", feed.deploy.id, method, slack_error(exc))

    # --- App Home -----------------------------------------------------------------------------

    def remember_home_viewer(self, user_id: str) -> None:
        self._home_viewers.add(user_id)

    async def publish_home(self, user_id: str) -> None:
        await self.client.views_publish(user_id=user_id, view=await self.home_view())

    async def home_view(self) -> dict:
        envs = []
        for env in self.config.environments.values():
            envs.append(await self._env_home(env))
        recent = (await self.service.history(page_size=HOME_RECENT)).items
        return home.home_view(envs, recent, self.locale, now=utcnow())

    async def _env_home(self, env: Environment) -> home.EnvHome:
        running = await self.service.active(env.name)
        estimate = await self.service.estimate(env.name) if running else None
        return home.EnvHome(
            env=env, live=await self.service.last_success(env.name), running=running, estimate=estimate
        )

    def _home_changed(self) -> None:
        if not self._home_viewers or self._closing:
            return
        if self._home_dirty is None:
            self._home_dirty = asyncio.Event()
        self._home_dirty.set()
        if self._home_task is None or self._home_task.done():
            self._home_task = asyncio.get_running_loop().create_task(self._home_loop(), name="slack-home")

    async def _home_loop(self) -> None:
        assert self._home_dirty is not None
        backoff = self.timing.retry_initial
        while True:
            await self._home_dirty.wait()
            self._home_dirty.clear()
            try:
                view = await self.home_view()
                for user_id in list(self._home_viewers):
                    # someone dropped from the admins (or their group) sees no more deploys
                    if not await self.admins.is_admin(user_id):
                        self._home_viewers.discard(user_id)
                        continue
                    await self.client.views_publish(user_id=user_id, view=view)
            except Exception as exc:
                if not is_transient(exc):
                    log.warning("App Home publish failed: %s", slack_error(exc))
                else:
                    self._home_dirty.set()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.timing.retry_cap)
                    continue
            backoff = self.timing.retry_initial
            await asyncio.sleep(self.timing.home_interval)
