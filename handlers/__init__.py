"""Slack listeners. `register(app, ctx)` installs the middlewares (handlers/middleware.py) and every
listener; each listener module registers its own."""

from __future__ import annotations

from slack_bolt.app.async_app import AsyncApp

from handlers import actions, approvals, commands, gates, home, locks, middleware, queueing, views
from handlers.context import SlackContext


def register(app: AsyncApp, ctx: SlackContext) -> None:
    middleware.install(app, ctx)
    commands.register(app)
    actions.register(app)
    queueing.register(app)
    views.register(app)
    home.register(app)
    locks.register(app)
    gates.register(app)
    approvals.register(app)
