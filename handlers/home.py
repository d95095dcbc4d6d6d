"""App Home: published when an admin opens it, and republished by the notifier while they have
(the notifier remembers who opened it) whenever a deploy changes state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from handlers.guard import guarded

if TYPE_CHECKING:
    from handlers.context import SlackContext


def register(app: AsyncApp) -> None:
    app.event("app_home_opened")(guarded(handle_app_home_opened))


async def handle_app_home_opened(ack: AsyncAck, event: dict, ctx: SlackContext) -> None:
    await ack()  # events are acknowledged at once; the view is published after
    if event.get("tab", "home") != "home":
        return  # the Messages tab
    ctx.notifier.remember_home_viewer(event["user"])
    await ctx.notifier.publish_home(event["user"])
