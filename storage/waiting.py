"""The SQL of deploys that wait (DESIGN §9, §10): queued, scheduled and awaiting approval.

Every move is one conditional UPDATE on the state the deploy must still be in, so with any number of
processes each move happens once; the unique index on the deploys that hold an environment turns a
start into a no-op (IntegrityError) when the environment was taken meanwhile. The engine decides
when to move what (bot/deploy/queue.py, approvals.py, schedule.py, webhooks.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import HOLDS_SQL, WAITING_SQL, Deploy, Status, db_now, seconds_after

# approval is asked when a deploy is created: these are the states in which it can be given
UNAPPROVED = (Status.AWAITING_APPROVAL.value, Status.QUEUED.value, Status.SCHEDULED.value)


async def insert_waiting(session: AsyncSession, status: Status, **fields) -> Deploy:
    """A new queued or scheduled deploy (it holds nothing)."""
    deploy = Deploy(status=status.value, created_at=db_now(), updated_at=db_now(), **fields)
    session.add(deploy)
    await session.flush()
    await session.refresh(deploy)
    return deploy


async def lock_queue(session: AsyncSession, environment: str) -> None:
    """On PostgreSQL, hold the environment's queue until the transaction ends, so that processes
    counting and adding at once cannot pass its limit together (SQLite writes one at a time)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            select(func.pg_advisory_xact_lock(func.hashtext("deploybot-queue:" + environment)))
        )


async def queued_count(session: AsyncSession, environment: str, before_id: int | None = None) -> int:
    query = select(func.count()).where(
        WAITING_SQL, Deploy.environment == environment, Deploy.status == Status.QUEUED.value
    )
    if before_id is not None:
        query = query.where(Deploy.id < before_id)
    return (await session.execute(query)).scalar_one()


async def queued_ids(
    session: AsyncSession, environment: str, *, source: str, before_id: int | None = None
) -> list[int]:
    """The queued deploys of `environment` started from `source`, oldest first."""
    query = select(Deploy.id).where(
        WAITING_SQL,
        Deploy.environment == environment,
        Deploy.source == source,
        Deploy.status == Status.QUEUED.value,
    )
    if before_id is not None:
        query = query.where(Deploy.id < before_id)
    return list((await session.execute(query.order_by(Deploy.id))).scalars())


async def heads_of_free_queues(session: AsyncSession) -> list[Deploy]:
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


async def start_queued(
    session: AsyncSession, deploy_id: int, commit: str | None, *, awaiting: bool, lease_seconds: float
) -> bool:
    """queued -> pending (unowned, leased for the claim), or -> awaiting_approval (no lease) when
    it still needs an approver. False when it is no longer queued; IntegrityError when another
    deploy holds the environment now."""
    moved = (
        dict(status=Status.AWAITING_APPROVAL.value)
        if awaiting
        else dict(
            status=Status.PENDING.value,
            heartbeat_at=db_now(),
            lease_expires_at=seconds_after(db_now(), lease_seconds),
        )
    )
    result = await session.execute(
        update(Deploy)
        .where(Deploy.id == deploy_id, Deploy.status == Status.QUEUED.value)
        .values(commit_hash=commit, runner_id=None, updated_at=db_now(), **moved)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


async def failed_ahead(session: AsyncSession, deploy: Deploy) -> Deploy | None:
    """The deploy that ended last in `deploy`'s environment while it waited, if that one failed."""
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
    ahead = (await session.execute(query)).scalar_one_or_none()
    return ahead if ahead is not None and ahead.state is Status.FAILED else None


# --- approvals -----------------------------------------------------------------------------------


def unapproved(
    *, deploy_id: int | None = None, environment: str | None = None, older_than_seconds: float | None = None
) -> list[ColumnElement]:
    """The conditions of a deploy still waiting for its approval (for `approve` and, with
    repository.call_off, for rejection and expiry)."""
    conditions = [Deploy.approved_by.is_(None), Deploy.status.in_(UNAPPROVED)]
    if deploy_id is not None:
        conditions.append(Deploy.id == deploy_id)
    if environment is not None:
        conditions.append(Deploy.environment == environment)
    if older_than_seconds is not None:
        conditions.append(Deploy.created_at < seconds_after(db_now(), -older_than_seconds))
    return conditions


async def approve(
    session: AsyncSession, deploy_id: int, user: str, *, lease_seconds: float
) -> tuple[bool, bool]:
    """Record `user`'s approval of a deploy not approved yet: (approved, started). One that holds
    its environment becomes an unowned pending deploy, leased for the claim."""
    result = await session.execute(
        update(Deploy)
        .where(*unapproved(deploy_id=deploy_id))
        .values(approved_by=user, approved_at=db_now(), updated_at=db_now())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        return False, False
    started = await session.execute(
        update(Deploy)
        .where(Deploy.id == deploy_id, Deploy.status == Status.AWAITING_APPROVAL.value)
        .values(
            status=Status.PENDING.value,
            heartbeat_at=db_now(),
            lease_expires_at=seconds_after(db_now(), lease_seconds),
        )
        .execution_options(synchronize_session=False)
    )
    return True, started.rowcount == 1


# --- schedules -----------------------------------------------------------------------------------


async def any_due(session: AsyncSession) -> bool:
    """Whether a scheduled deploy's time has come (a plain read: on SQLite an UPDATE takes the
    write lock even when it matches nothing)."""
    query = select(Deploy.id).where(
        WAITING_SQL, Deploy.status == Status.SCHEDULED.value, Deploy.scheduled_at <= db_now()
    )
    return (await session.execute(query.limit(1))).first() is not None


def scheduled_before(seconds_ago: float) -> Sequence[ColumnElement]:
    """Scheduled deploys whose time passed more than `seconds_ago` (for repository.call_off)."""
    return (
        Deploy.status == Status.SCHEDULED.value,
        Deploy.scheduled_at < seconds_after(db_now(), -seconds_ago),
    )


async def queue_due(session: AsyncSession) -> list[int]:
    """scheduled -> queued for every deploy whose time has come; their ids."""
    rows = await session.execute(
        update(Deploy)
        .where(Deploy.status == Status.SCHEDULED.value, Deploy.scheduled_at <= db_now())
        .values(status=Status.QUEUED.value, updated_at=db_now())
        .returning(Deploy.id)
        .execution_options(synchronize_session=False)
    )
    return list(rows.scalars())
