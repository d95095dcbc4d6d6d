"""Everything the bot says in channels about a deploy: its card, its thread, its log file, App Home.

The deploy service calls `observe` inline while a deploy runs, so `observe` only records the newest
state and wakes the deploy's own worker; the worker does the Web API calls. Per deploy the worker:

- posts the card once (in the channel the deploy was asked from, or `notify_channel` for REST
  deploys) and remembers it with `service.attach_message`;
- posts one thread reply per step, in order (one reply for several steps when the channel is busy);
- edits the card at most once a second, always with the newest state (a running card is also
  refreshed every few seconds so its elapsed time moves);
- at the end shows the final state on the card, then posts the final reply and, unless the deploy
  succeeded, uploads the whole log.

What to do next is feed.py's `plan`; every call waits for its budget in the outbox shared by all
workers (outbox.py), which keeps the bot under Slack's rate limits, serves finals first and pauses
a budget for everyone on a 429. Slack failing never reaches the service: the client retries 5xx and
connection errors; if Slack is still down the worker waits, backing off, and then writes the newest
state: the card always ends in the deploy's final state once Slack answers again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.aio import wait_event
from bot.config import Config
from bot.deploy.events import (
    DeployAwaitingApproval,
    DeployEvent,
    DeployFinished,
    DeployLost,
    GateAnswered,
    GateAsked,
    StepChanged,
)
from bot.deploy.lock_events import LockEvent
from bot.i18n import t
from bot.slack.apphome import AppHome
from bot.slack.blocks import card, gate, thread
from bot.slack.blocks.approval import approval_request
from bot.slack.blocks.messages import Message
from bot.slack.client import without_rate_limit_retries
from bot.slack.feed import (
    CardFailed,
    CardOutcome,
    CardPosted,
    Feed,
    Timing,
    log_wanted,
    plan,
    steps_before_note,
)
from bot.slack.lock_notices import LockNotices
from bot.slack.outbox import Budget, Outbox, RateLimited, SlackUnavailable, Want, is_transient, slack_error
from bot.slack.permissions import Admins
from storage.models import Deploy, Status, utcnow

if TYPE_CHECKING:
    from bot.deploy.service import DeployService

__all__ = ["CardFailed", "CardOutcome", "CardPosted", "SlackNotifier", "Timing"]

log = logging.getLogger(__name__)

MAX_LOG_UPLOAD = 50 * 1024 * 1024
MAX_UNKNOWN_FAILURES = 5


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
        self.client = client  # listener answers (App Home on opening): few, and waited for
        self.paced = without_rate_limit_retries(client)  # everything that goes through the outbox
        self.admins = admins
        self.locale = config.locale
        self.timing = timing or Timing()
        self.outbox = Outbox(self.timing.pacing)
        self._feeds: dict[int, Feed] = {}
        self._workers: set[asyncio.Task] = set()
        self.home = AppHome(config, service, client, self.paced, admins, self.outbox, self.timing)
        self.locks = LockNotices(config, client, self.home)  # DMs and channel notes about locks

    # --- the observer (called inline by the service: must return at once) -------------------

    def observe(self, event: object) -> None:
        if isinstance(event, LockEvent):
            self.locks.observe(event)
            return
        if not isinstance(event, DeployEvent):
            return
        deploy = event.deploy
        if isinstance(event, DeployLost):  # the reaper tells Slack: our stale card would overwrite its
            if (feed := self._feeds.get(deploy.id)) and feed.final is None:  # unless we reaped it
                feed.dead = True  # its worker stops before its next call
                feed.wake.set()
            return
        if isinstance(event, DeployAwaitingApproval):
            self._spawn(self._ask_approvers(deploy), f"slack-approval-{deploy.id}")
        feed = self._feeds.get(deploy.id) or self._open_feed(deploy)
        if feed is not None:
            feed.deploy = deploy
            feed.version += 1
            if isinstance(event, StepChanged):
                feed.steps.append(event.step)
                feed.steps_seen += 1
            if isinstance(event, GateAsked | GateAnswered):
                feed.notes.append((feed.steps_seen, event))
            if isinstance(event, DeployFinished):
                feed.final = event
                feed.final_version = feed.version
            feed.wake.set()
        self.home.changed()

    def _spawn(self, work, name: str) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    async def _ask_approvers(self, deploy: Deploy) -> None:
        """A DM to each approver of the environment (Slack users; tokens approve over REST) with
        what would change and 批准 / 拒绝. Never to the requester, who cannot approve."""
        env = self.config.environments.get(deploy.environment)
        if env is None:
            return
        # an environment that names no approvers is approved by any admin: the admins named in the
        # config are asked (members of admin_groups see the card in the channel)
        named = env.approvers or self.config.bot.admins
        approvers = [a for a in named if a[:1] in ("U", "W") and a != deploy.deployed_by]
        if not approvers:
            return
        try:
            changes = await self.service.changes_for(deploy)
        except Exception:
            log.exception("deploy #%s: could not read what it would change", deploy.id)
            changes = None
        message = approval_request(deploy, env, changes, self.locale)
        for user in approvers:
            try:
                await self.client.chat_postMessage(channel=user, unfurl_links=False, **message.as_kwargs())
            except Exception as exc:
                log.warning("deploy #%s: cannot ask %s for approval: %s", deploy.id, user, slack_error(exc))

    def _open_feed(self, deploy: Deploy) -> Feed | None:
        """A feed and its worker for a deploy that has a channel to be shown in, else None."""
        channel = self._channel_for(deploy)
        if channel is None:
            return None
        loop = asyncio.get_running_loop()
        feed = Feed(deploy, channel, loop)
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
        position = await self.service.queue_position(deploy) if deploy.state is Status.QUEUED else None
        return card.CardContext(
            env=self.config.environments.get(deploy.environment),
            now=utcnow(),
            estimate=estimate,
            rollback_target=target,
            lock=await self.service.locks.shown(deploy.environment),
            queue_position=position,
        )

    async def wait_idle(self) -> None:
        """Wait until every deploy's card, thread and file are written (tests, shutdown)."""
        while self._workers:
            await asyncio.gather(*list(self._workers), return_exceptions=True)
        await self.locks.wait_idle()

    async def close(self, timeout: float = 10.0) -> None:
        """Give the workers a moment to write final states, then stop them."""
        await self.home.close()
        await self.locks.close(timeout)
        if self._workers:
            await asyncio.wait(list(self._workers), timeout=timeout)
        tasks = list(self._workers)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.outbox.close()

    # --- one deploy ---------------------------------------------------------------------------

    async def _work(self, feed: Feed) -> None:
        backoff = self.timing.retry_initial
        unknown_failures = 0
        try:
            while True:
                feed.wake.clear()
                if feed.finished:
                    return
                try:
                    await self._load_context(feed)
                    wants, due = plan(feed, self.outbox, self.timing, self.outbox.clock())
                    if not wants:
                        await self._sleep(feed, due)
                        continue
                    want = await self.outbox.acquire(wants, wake=feed.wake, until=due)
                    if want is not None:
                        await self._perform(feed, want)
                except RateLimited:
                    continue  # the budget is paused for everyone: asking again waits it out
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
        finally:
            feed.settle(None)
            if self._feeds.get(feed.deploy.id) is feed:
                del self._feeds[feed.deploy.id]

    async def _sleep(self, feed: Feed, due: float | None) -> None:
        timeout = None if due is None else due - self.outbox.clock()
        if timeout is not None and timeout <= 0:
            return
        await wait_event(feed.wake, timeout)

    async def _perform(self, feed: Feed, want: Want) -> None:
        """Do what `want` was granted for, from the feed's newest state."""
        action = {
            "card": self._post_card,
            "update": self._update_card,
            "steps": self._post_steps,
            "note": self._post_note,
            "final": self._post_final,
            "log": self._upload_log,
        }[want.kind]
        await action(feed, want)
        feed.since.pop(want.kind, None)

    async def _load_context(self, feed: Feed) -> None:
        deploy = feed.deploy
        if not feed.estimate_loaded and not deploy.step_total:
            feed.estimate = await self.service.estimate(deploy.environment)
            feed.estimate_loaded = True
        if deploy.state is Status.QUEUED:
            feed.queue_position = await self.service.queue_position(deploy)
        if not feed.failed_ahead_loaded and deploy.state.is_leased:
            feed.failed_ahead = await self.service.failed_ahead(deploy)
            feed.failed_ahead_loaded = True
        if not feed.changes_loaded and deploy.state is Status.AWAITING_APPROVAL:
            feed.changes = await self.service.changes_for(deploy)
            feed.changes_loaded = True
        if not feed.rollback_loaded and deploy.state is Status.SUCCESS:
            feed.rollback_target = await self.service.rollback_target_for(deploy)
            feed.rollback_loaded = True

    def _context(self, feed: Feed) -> card.CardContext:
        return card.CardContext(
            env=self.config.environments.get(feed.deploy.environment),
            now=utcnow(),
            estimate=feed.estimate,
            rollback_target=feed.rollback_target,
            lock=self.service.locks.known(feed.deploy.environment),
            queue_position=feed.queue_position,
            changes=feed.changes,
            failed_ahead=feed.failed_ahead,
            zone=self.config.bot.timezone,
        )

    async def _post_card(self, feed: Feed, want: Want) -> None:
        version = feed.version
        message = card.deploy_card(feed.deploy, self._context(feed), self.locale)
        try:
            response = await self.outbox.send(
                want.budget,
                lambda: self.paced.chat_postMessage(
                    channel=feed.channel, unfurl_links=False, unfurl_media=False, **message.as_kwargs()
                ),
            )
        except RateLimited:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise SlackUnavailable(slack_error(exc)) from exc
            error = slack_error(exc)
            log.warning("deploy #%s: cannot post its card in %s: %s", feed.deploy.id, feed.channel, error)
            feed.dead = True
            feed.settle(CardFailed(feed.channel, error))
            return
        feed.channel = response.get("channel") or feed.channel
        feed.ts = response["ts"]
        feed.sent_version = version
        # The once-a-second limit is on chat.update; posting is not an update, so the first
        # update may follow at once (a quick deploy shows its outcome without waiting).
        feed.last_write = self.outbox.clock()
        feed.settle(CardPosted(feed.channel, feed.ts))
        try:
            await self.service.attach_message(feed.deploy.id, feed.channel, feed.ts)
        except Exception:  # the card works without it; only another process could not find it
            log.exception("deploy #%s: could not remember its card", feed.deploy.id)

    async def _update_card(self, feed: Feed, want: Want) -> None:
        version = feed.version
        message = card.deploy_card(feed.deploy, self._context(feed), self.locale)
        await self._call(
            feed,
            want.budget,
            "chat.update",
            lambda: self.paced.chat_update(channel=feed.channel, ts=feed.ts, **message.as_kwargs()),
        )
        feed.sent_version = version
        feed.last_update = feed.last_write = self.outbox.clock()

    async def _post_steps(self, feed: Feed, want: Want) -> None:
        """The first waiting step; all of them in one reply when the channel could not take
        another post right now (Slack would only make them wait longer)."""
        steps = list(feed.steps)[: steps_before_note(feed)]
        if len(steps) > 1 and self.outbox.ready(want.budget, want.priority):
            steps = steps[:1]
        await self._thread_reply(feed, want.budget, thread.steps_reply(feed.deploy, steps, self.locale))
        for _ in steps:
            feed.steps.popleft()

    async def _post_note(self, feed: Feed, want: Want) -> None:
        """A gate's question (with its buttons while it is open) or its answer, in the thread."""
        env = self.config.environments.get(feed.deploy.environment)
        _, event = feed.notes[0]
        await self._thread_reply(feed, want.budget, gate.gate_note(feed.deploy, event, env, self.locale))
        feed.notes.popleft()

    async def _post_final(self, feed: Feed, want: Want) -> None:
        assert feed.final is not None
        steps = list(feed.steps)  # those the channel had no room for go in the final reply
        context = self._context(feed)
        message = thread.final_reply(feed.deploy, context, feed.final.tail, self.locale, steps=steps)
        failed = feed.deploy.state is not Status.SUCCESS
        await self._thread_reply(feed, want.budget, message, broadcast=failed)
        for _ in steps:
            feed.steps.popleft()
        feed.final_sent = True
        feed.log_sent = not log_wanted(feed.deploy)

    async def _thread_reply(
        self, feed: Feed, budget: Budget, message: Message, *, broadcast: bool = False
    ) -> None:
        kwargs: dict[str, Any] = {"reply_broadcast": True} if broadcast else {}
        await self._call(
            feed,
            budget,
            "chat.postMessage",
            lambda: self.paced.chat_postMessage(
                channel=feed.channel, thread_ts=feed.ts, unfurl_links=False, **kwargs, **message.as_kwargs()
            ),
        )

    async def _upload_log(self, feed: Feed, want: Want) -> None:
        deploy = feed.deploy
        data = await self._whole_log(deploy.id)
        if data:
            await self._call(
                feed,
                want.budget,
                "files_upload_v2",
                lambda: self.paced.files_upload_v2(
                    channel=feed.channel,
                    thread_ts=feed.ts,
                    filename=f"deploy-{deploy.id}.log",
                    title=t(self.locale, "cmd.log_file_title", deploy_id=deploy.id),
                    content=data,
                ),
            )
        feed.log_sent = True

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

    async def _call(self, feed: Feed, budget: Budget, method: str, call: Callable[[], Awaitable]) -> None:
        """One granted Web API call: a 429 pauses its budget (RateLimited), other transient
        failures are retried later, others are logged and the message dropped (retrying a message
        Slack rejects would never end)."""
        try:
            await self.outbox.send(budget, call)
        except RateLimited:
            raise
        except Exception as exc:
            if is_transient(exc):
                raise SlackUnavailable(f"{method}: {slack_error(exc)}") from exc
            log.warning("deploy #%s: %s failed: %s", feed.deploy.id, method, slack_error(exc))

    # --- App Home (apphome.py) ---------------------------------------------------------------

    def remember_home_viewer(self, user_id: str) -> None:
        self.home.remember_viewer(user_id)

    async def publish_home(self, user_id: str) -> None:
        await self.home.publish(user_id)
