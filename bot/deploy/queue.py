"""The deploy queue (DESIGN §9): deploys that wait for their environment to free, oldest first.

A queued deploy holds nothing. Whenever an environment has no holder, any process may start its
oldest queued deploy: the branch is resolved to a commit then (unless a commit was named), and the
move queued -> pending is one conditional UPDATE that the unique index on holders guards, so with
any number of processes trying at once each queued deploy starts once and an environment never gets
two. The started deploy is unowned and announced, like any deploy handed to another process; a
failed deploy does not stop the queue. Someone else's lock on the environment keeps the queue
waiting until it ends.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import IntegrityError

from bot.config import Config
from bot.deploy import approvals
from bot.deploy.cluster import Cluster
from bot.deploy.freeze import frozen
from bot.errors import DeployError, QueueFull
from storage import locks, waiting
from storage import repository as repo
from storage.db import Database
from storage.models import Deploy, Status, utcnow

log = logging.getLogger(__name__)

ResolveCommit = Callable[[str, str], Awaitable[str | None]]  # (environment, branch) -> commit


async def enqueue(session, *, limit: int, environment: str, **row) -> Deploy:
    """Insert a queued deploy, unless `limit` are queued there already (QueueFull); processes
    queueing at once cannot pass the limit together."""
    await waiting.lock_queue(session, environment)
    if await waiting.queued_count(session, environment) >= limit:
        raise QueueFull(environment=environment, limit=limit)
    return await waiting.insert_waiting(session, Status.QUEUED, environment=environment, **row)


async def failed_ahead(db: Database, deploy: Deploy) -> Deploy | None:
    """The deploy that held the environment while `deploy` waited, when it failed: the queue went
    on regardless, and the card of the next one says so."""
    async with db.session() as session:
        return await waiting.failed_ahead(session, deploy)


async def position(db: Database, deploy: Deploy) -> int:
    """1 for the next to start."""
    async with db.session() as session:
        return await waiting.queued_count(session, deploy.environment, before_id=deploy.id) + 1


class Dequeuer:
    def __init__(
        self, config: Config, db: Database, resolve_commit: ResolveCommit, lease_seconds: float
    ) -> None:
        self.config = config
        self.db = db
        self.resolve_commit = resolve_commit
        self.lease_seconds = lease_seconds

    async def run(self) -> list[Deploy]:
        """Start the oldest queued deploy of every environment that is free now."""
        async with self.db.session(background=True) as session:
            candidates = await waiting.heads_of_free_queues(session)
        started = []
        for deploy in candidates:
            if (moved := await self._start(deploy)) is not None:
                started.append(moved)
        return started

    async def _start(self, deploy: Deploy) -> Deploy | None:
        env = self.config.environments.get(deploy.environment)
        if env is None:
            return None
        async with self.db.session(background=True) as session:
            lock = await locks.current(session, env.name)
        if lock is not None and lock.holder != deploy.deployed_by:
            return None  # someone else's lock: the queue waits for it to end
        if not deploy.forced_by and frozen(self.config, env.name, utcnow()) is not None:
            return None  # a freeze: the queue waits for it to end (unless a manager forced it)
        commit = deploy.commit_hash
        error = None
        if commit is None:
            try:
                commit = await self.resolve_commit(env.name, deploy.branch)
            except DeployError as exc:
                error = exc.message(self.config.locale)
        try:
            async with self.db.session(background=True) as session:
                if error is not None:
                    cancelled = await repo.transition(
                        session, deploy.id, Status.CANCELLED, error_message=error[:2000]
                    )
                    return deploy if cancelled else None
                # not approved yet (approval is asked when it is created): it holds the environment
                # and waits for an approver, with no lease
                awaiting = (
                    approvals.needed(env, rollback=deploy.rollback_of is not None) and not deploy.approved_by
                )
                started = await waiting.start_queued(
                    session, deploy.id, commit, awaiting=awaiting, lease_seconds=self.lease_seconds
                )
                if not started:
                    return None  # another process started it, or it was cancelled
                if not awaiting:
                    await Cluster.announce_pending(session)  # wakes the processes that claim
        except IntegrityError:
            return None  # the environment was taken meanwhile: the deploy stays queued
        log.info("deploy #%s: started from the queue of %s", deploy.id, deploy.environment)
        return deploy
