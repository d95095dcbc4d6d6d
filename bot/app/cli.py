"""Command-line actions that need no Slack: schema, retention, one deploy streamed to the terminal."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bot.aio import wait_event
from bot.app.runtime import start_runtime
from bot.config import Config
from bot.deploy.events import DeployEvent, DeployFinished, DeployLost, StepChanged
from bot.i18n import t
from storage.db import Database
from storage.models import Deploy, Status


async def db_upgrade(config: Config) -> int:
    db = Database(config.database_url)
    try:
        await db.upgrade()
    finally:
        await db.dispose()
    print(f"database at head: {db.engine.url.render_as_string(hide_password=True)}")
    return 0


async def cleanup(config: Config) -> int:
    runtime = await start_runtime(config, role="cli", claims=False)
    try:
        result = await runtime.service.cleanup()
    finally:
        await runtime.close()
    print(t(config.locale, "cleanup.done", logs=result.logs_cleared, records=result.records_deleted))
    return 0


async def deploy(config: Config, args: argparse.Namespace) -> int:
    runtime = await start_runtime(config, role="cli", claims=False)
    try:
        deploy = await runtime.service.trigger(
            args.environment,
            args.branch,
            user=args.user,
            description=args.description,
            skip_build=args.skip_build,
            skip_migrations=args.skip_migrations,
            source="cli",
        )
        return await _follow(runtime, deploy)
    finally:
        await runtime.close()


async def rollback(config: Config, args: argparse.Namespace) -> int:
    runtime = await start_runtime(config, role="cli", claims=False)
    try:
        deploy = await runtime.service.rollback(
            args.deploy_id, user=args.user, reason=args.reason, source="cli"
        )
        return await _follow(runtime, deploy)
    finally:
        await runtime.close()


async def _follow(runtime, deploy: Deploy) -> int:
    """Print the log as it is stored, then the outcome."""
    service = runtime.service
    locale = runtime.config.locale
    done = asyncio.Event()
    final: list[Deploy] = []

    def observe(event: DeployEvent) -> None:
        if not isinstance(event, DeployEvent) or event.deploy.id != deploy.id:
            return  # another deploy's, or a lock's
        if isinstance(event, StepChanged):
            sys.stderr.write(f"-- {event.step.number}/{event.step.total or '?'} {event.step.title}\n")
        if isinstance(event, DeployFinished | DeployLost):  # lost: reaped, as its row says
            final.append(event.deploy)
            done.set()

    service.events.subscribe(observe)
    print(f"#{deploy.id} {deploy.environment} {deploy.branch} {deploy.short_commit}", file=sys.stderr)
    offset = 0
    out = sys.stdout.buffer
    while True:
        finished = done.is_set()
        view = await service.logs(deploy.id, offset)
        out.write(view.data)
        out.flush()
        offset = view.next_offset
        if finished and view.complete:
            break
        if not view.data:
            await wait_event(done, 0.5)
    result = final[0]
    label = t(locale, f"status.{result.status}")
    tail = f" — {result.error_message}" if result.error_message else ""
    print(f"\n#{result.id} {label} ({result.duration}s){tail}", file=sys.stderr)
    return 0 if result.state is Status.SUCCESS else 1
