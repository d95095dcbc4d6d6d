"""Slack listeners. `register(app, ctx)` installs the middlewares (handlers/middleware.py) and every
listener; each listener module registers its own."""

from __future__ import annotations

from slack_bolt.app.async_app import AsyncApp

from handlers import actions, commands, home, middleware, views
from handlers.context import SlackContext


def register(app: AsyncApp, ctx: SlackContext) -> None:
    middleware.install(app, ctx)
    commands.register(app)
    actions.register(app)
    views.register(app)
    home.register(app)
