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

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from bot.config import Config
from bot.deploy import approvals
from bot.deploy.cluster import Cluster
from bot.deploy.freeze import frozen
from bot.errors import DeployError, QueueFull
from storage import locks
from storage import repository as repo
from storage.db import Database
from storage.models import HOLDS_SQL, WAITING_SQL, Deploy, Status, db_now, seconds_after, utcnow

log = logging.getLogger(__name__)

ResolveCommit = Callable[[str, str], Awaitable[str | None]]  # (environment, branch) -> commit


async def enqueue(session, *, limit: int, environment: str, **row) -> Deploy:
    """Insert a queued deploy, unless `limit` are queued there already (QueueFull). On PostgreSQL
    the count and the insert hold a lock per environment, so that processes queueing at once
    cannot pass the limit together."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(func.pg_advisory_xact_lock(func.hashtext("deploybot-queue:" + environment)))
        )
    waiting = await queued_count(session, environment)
    if waiting >= limit:
        raise QueueFull(environment=environment, limit=limit)
    deploy = Deploy(
        status=Status.QUEUED.value,
        environment=environment,
        created_at=db_now(),
        updated_at=db_now(),
        **row,
    )
    session.add(deploy)
    await session.flush()
    await session.refresh(deploy)
    return deploy


async def queued_count(session, environment: str, before_id: int | None = None) -> int:
    query = select(func.count()).where(
        WAITING_SQL, Deploy.environment == environment, Deploy.status == Status.QUEUED.value
    )
    if before_id is not None:
        query = query.where(Deploy.id < before_id)
    return (await session.execute(query)).scalar_one()


async def failed_ahead(db: Database, deploy: Deploy) -> Deploy | None:
    """The deploy that held the environment while `deploy` waited, when it failed: the queue went
    on regardless, and the card of the next one says so."""
    if deploy.created_at is None:
        return None
    until = deploy.started_at or deploy.updated_at or deploy.created_at
    query = (
        select(Deploy)
        .where(
            Deploy.environment == deploy.environment,
            Deploy.id < deploy.id,
            Deploy.completed_at >= deploy.created_at,
            Deploy.completed_at <= until,
        )
        .order_by(Deploy.completed_at.desc())
        .limit(1)
    )
    async with db.session() as session:
        ahead = (await session.execute(query)).scalar_one_or_none()
    return ahead if ahead is not None and ahead.state is Status.FAILED else None


async def position(db: Database, deploy: Deploy) -> int:
    """1 for the next to start."""
    async with db.session() as session:
        return await queued_count(session, deploy.environment, before_id=deploy.id) + 1


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
            candidates = await _heads_of_free_queues(session)
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
                moved = (
                    dict(status=Status.AWAITING_APPROVAL.value)
                    if awaiting
                    else dict(
                        status=Status.PENDING.value,
                        heartbeat_at=db_now(),
                        lease_expires_at=seconds_after(db_now(), self.lease_seconds),
                    )
                )
                result = await session.execute(
                    update(Deploy)
                    .where(Deploy.id == deploy.id, Deploy.status == Status.QUEUED.value)
                    .values(commit_hash=commit, runner_id=None, updated_at=db_now(), **moved)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount != 1:
                    return None  # another process started it, or it was cancelled
                if not awaiting:
                    await Cluster.announce_pending(session)  # wakes the processes that claim
        except IntegrityError:
            return None  # the environment was taken meanwhile: the deploy stays queued
        log.info("deploy #%s: started from the queue of %s", deploy.id, deploy.environment)
        return deploy


async def _heads_of_free_queues(session) -> list[Deploy]:
    """The oldest queued deploy of each environment that no deploy holds."""
    oldest = (
        select(func.min(Deploy.id))
        .where(WAITING_SQL, Deploy.status == Status.QUEUED.value)
        .group_by(Deploy.environment)
        .scalar_subquery()
    )
    held = select(Deploy.environment).where(HOLDS_SQL).scalar_subquery()
    query = select(Deploy).where(Deploy.id.in_(oldest), Deploy.environment.not_in(held))
    return list((await session.execute(query.order_by(Deploy.id))).scalars())
