"""The guard around every listener: `Reply` (an ephemeral answer to whoever acted) and `guarded`,
the one place where a user's mistake (a `DeployError` or `UsageError`) becomes a message to that
user, and where the work after a listener's ack moves into a task of its own."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.kwargs_injection.async_args import AsyncArgs
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.errors import DeployError
from bot.i18n import t
from bot.slack.blocks.messages import Message, error_notice, error_text, notice, usage_error
from bot.slack.grammar import UsageError
from bot.slack.notifier import CardFailed
from storage.models import Deploy

if TYPE_CHECKING:
    from handlers.context import SlackContext

log = logging.getLogger(__name__)


@dataclass
class Reply:
    """An ephemeral answer to the user behind one request: in the ack while the request is still
    open (slash commands), else through its response_url, else in the app's DM with the user."""

    ack: AsyncAck
    response_url: str | None
    client: AsyncWebClient
    user_id: str | None
    is_command: bool
    locale: str

    async def __call__(self, message: Message, *, replace: bool = False) -> None:
        if self.ack.response is None:
            if self.is_command:
                await self.ack(response_type="ephemeral", **message.as_kwargs())
                return
            await self.ack()
        if self.response_url:
            # on the Web API client's pooled session (Bolt's `respond` opens a connection per answer)
            webhook = AsyncWebhookClient(
                self.response_url, session=self.client.session, retry_handlers=self.client.retry_handlers
            )
            await webhook.send(response_type="ephemeral", replace_original=replace, **message.as_kwargs())
        elif self.user_id:
            await self.client.chat_postMessage(channel=self.user_id, **message.as_kwargs())

    async def error(self, exc: Exception) -> None:
        if isinstance(exc, UsageError):
            await self(
                usage_error(error_text(exc.message_key, exc.params, self.locale), exc.usage, self.locale)
            )
        elif isinstance(exc, DeployError):
            await self(error_notice(exc, self.locale))
        else:
            await self(notice(t(self.locale, "cmd.error.unexpected")))

    async def card_problems(self, ctx: SlackContext, deploy: Deploy) -> None:
        """Tell the user when the card of the deploy they just started could not be posted (the
        deploy runs anyway)."""
        outcome = await ctx.notifier.card_outcome(deploy.id)
        if isinstance(outcome, CardFailed):
            channel = f"<#{outcome.channel}>" if outcome.channel[:1] in ("C", "G") else outcome.channel
            text = t(
                self.locale,
                "cmd.channel_unreachable",
                deploy_id=deploy.id,
                channel=channel,
                error=outcome.error,
            )
            await self(notice(text))


Listener = Callable[..., Awaitable[None]]


class Ack(AsyncAck):
    """Bolt's ack, which also wakes whoever waits for it (`guarded`)."""

    def __init__(self) -> None:
        super().__init__()
        self.done = asyncio.Event()

    async def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        try:
            return await super().__call__(*args, **kwargs)
        finally:
            self.done.set()


def guarded(listener: Listener) -> Listener:
    """Run a listener, turning what it raises into an answer to the user. Listeners declare the
    Bolt arguments they want by name, as usual, plus `ctx` and `reply`.

    Bolt waits for what this returns before it answers Slack (the app runs with
    `process_before_response`), so this returns as soon as the listener has acked and lets the
    rest of its work go on in a task: an ack is sent the moment it is made, where Bolt's own
    runner would look for it every 10 ms."""
    wanted = inspect.getfullargspec(listener).args

    async def work(context: AsyncBoltContext, kwargs: dict[str, Any]) -> None:
        try:
            await listener(**kwargs)
        except (DeployError, UsageError) as exc:
            await context["reply"].error(exc)
        except Exception as exc:
            log.exception("%s failed", listener.__name__)
            await context["reply"].error(exc)

    async def run(args: AsyncArgs) -> None:
        context: AsyncBoltContext = args.context
        kwargs = {name: context[name] if name in ("ctx", "reply") else getattr(args, name) for name in wanted}
        task = asyncio.ensure_future(work(context, kwargs))
        # kept, so shutdown and tests can wait for the work a listener does after its ack
        tasks: set[asyncio.Future] = context["ctx"].tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        acked = asyncio.ensure_future(context.ack.done.wait())
        try:
            await asyncio.wait({task, acked}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            acked.cancel()

    run.__name__ = listener.__name__
    run.__qualname__ = listener.__qualname__
    return run
