"""All SQL the bot runs. Functions take the caller's session and never commit.

Lifecycle timestamps are the database's clock (`db_now`), and a deploy belongs to the process named
by its `runner_id` for as long as its lease lasts. The writes of a running deploy name their owner:
once the deploy is no longer the owner's (reaped, or ended), they change nothing and raise
`LeaseLost`, so a process that was paused past its lease cannot write over the reaper's verdict.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    FINISHED_STATUSES,
    HOLDS_SQL,
    LEASED_SQL,
    LEASED_STATUSES,
    Deploy,
    DeployCount,
    LogChunk,
    Status,
    db_now,
    seconds_after,
    sources_of,
)

_LEASED = [s.value for s in LEASED_STATUSES]
_FINISHED = [s.value for s in FINISHED_STATUSES]


@dataclass(frozen=True)
class Page:
    items: list[Deploy]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


@dataclass(frozen=True)
class Renewal:
    renewed: frozenset[int]  # the deploys whose lease was extended
    cancels: dict[int, str]  # cancel requests waiting for any of them: deploy id -> who asked


class LeaseLost(Exception):
    """The deploy is no longer the writer's: reaped (its lease expired) or ended. Nothing was written."""


@dataclass(frozen=True)
class LogSlice:
    data: bytes
    offset: int
    next_offset: int
    size: int


# --- deploys -------------------------------------------------------------------------------------


async def insert_deploy(
    session: AsyncSession,
    *,
    runner_id: str | None = None,
    lease_seconds: float | None = None,
    status: Status = Status.PENDING,
    **fields,
) -> Deploy:
    """Insert a pending deploy, leased to `runner_id` (the process that will run it) when given.
    The partial unique index raises IntegrityError when the environment already has a
    pending/running deploy, or when the request key was seen."""
    if runner_id is not None:
        fields["runner_id"] = runner_id
    if lease_seconds is not None:
        fields["lease_expires_at"] = seconds_after(db_now(), lease_seconds)
    deploy = Deploy(
        status=status.value, created_at=db_now(), updated_at=db_now(), heartbeat_at=db_now(), **fields
    )
    session.add(deploy)
    await session.flush()
    await session.refresh(deploy)  # the times the database gave it, read while the session is open
    return deploy


async def get_deploy(
    session: AsyncSession, deploy_id: int, *, include_deleted: bool = False
) -> Deploy | None:
    query = select(Deploy).where(Deploy.id == deploy_id)
    if not include_deleted:
        query = query.where(Deploy.is_deleted == "N")
    return (await session.execute(query)).scalar_one_or_none()


async def get_by_request_key(session: AsyncSession, key: str) -> Deploy | None:
    return (await session.execute(select(Deploy).where(Deploy.request_key == key))).scalar_one_or_none()


async def active_deploy(session: AsyncSession, environment: str) -> Deploy | None:
    query = select(Deploy).where(Deploy.environment == environment, HOLDS_SQL)
    return (await session.execute(query)).scalars().first()


async def active_deploys(session: AsyncSession) -> list[Deploy]:
    query = select(Deploy).where(LEASED_SQL).order_by(Deploy.id)
    return list((await session.execute(query)).scalars())


def lease_expiry(lease_seconds: float) -> ColumnElement:
    """When an active deploy's lease ends. A row from a bot that predates leases (migration 0006,
    say an old process during a rolling upgrade) has only its heartbeat: a lease from that."""
    last_sign = func.coalesce(Deploy.heartbeat_at, Deploy.created_at)
    return func.coalesce(Deploy.lease_expires_at, seconds_after(last_sign, lease_seconds))


def _owned_by(runner_id: str) -> ColumnElement:
    return (Deploy.runner_id == runner_id) & Deploy.status.in_(_LEASED)


async def transition(
    session: AsyncSession, deploy_id: int, to: Status, *, owner: str | None = None, **fields
) -> bool:
    """Move a deploy to `to` if the lifecycle allows it from its current state (and, given an
    `owner`, only while the deploy is that process's).

    The check and the write are one UPDATE, so a runner finishing and a reaper reaping the same
    deploy cannot both win. Returns False when the deploy was not in a state that allows the move.
    """
    conditions = [] if owner is None else [Deploy.runner_id == owner]
    return await _transition(session, deploy_id, to, conditions, fields)


async def claim(
    session: AsyncSession, deploy_id: int, runner_id: str, lease_seconds: float, **fields
) -> bool:
    """pending -> running for `runner_id`: the start recorded and the lease taken, in the
    database's time. False when the deploy is no longer pending (cancelled, reaped) or is leased
    to another process."""
    conditions = [or_(Deploy.runner_id.is_(None), Deploy.runner_id == runner_id)]
    values = dict(
        started_at=db_now(),
        heartbeat_at=db_now(),
        runner_id=runner_id,
        lease_expires_at=seconds_after(db_now(), lease_seconds),
        **fields,
    )
    return await _transition(session, deploy_id, Status.RUNNING, conditions, values)


async def reap(session: AsyncSession, deploy_id: int, lease_seconds: float, **fields) -> bool:
    """End an active deploy as failed if its lease is still expired: a renewal that came in since
    it was found wins, and the deploy goes on."""
    expired = lease_expiry(lease_seconds) < db_now()
    return await _transition(session, deploy_id, Status.FAILED, [expired], fields)


async def _transition(
    session: AsyncSession, deploy_id: int, to: Status, conditions: list[ColumnElement], fields: dict
) -> bool:
    values = {"status": to.value, **fields}
    if to.is_finished:
        values.setdefault("completed_at", db_now())
    query = (
        update(Deploy)
        .where(Deploy.id == deploy_id, Deploy.status.in_([s.value for s in sources_of(to)]), *conditions)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(query)
    if result.rowcount != 1:
        return False
    if to.is_finished:
        # duration = whole seconds from started_at (or creation, if it never started): both are
        # the database's times, like completed_at
        row = await get_deploy(session, deploy_id, include_deleted=True)
        await session.refresh(row)
        begin = row.started_at or row.created_at
        row.duration = max(0, int((row.completed_at - begin).total_seconds()))
        await session.flush()
    return True


async def call_off(
    session: AsyncSession, conditions: Sequence[ColumnElement], message: str, **fields
) -> list[int]:
    """End every deploy matching `conditions` that never ran (waiting, or awaiting approval) as
    cancelled with `message`, in one conditional UPDATE: each is ended once, whoever else tries.
    Returns their ids."""
    rows = await session.execute(
        update(Deploy)
        .where(*conditions)
        .values(
            status=Status.CANCELLED.value,
            error_message=message,
            completed_at=db_now(),
            updated_at=db_now(),
            duration=0,
            **fields,
        )
        .returning(Deploy.id)
        .execution_options(synchronize_session=False)
    )
    return list(rows.scalars())


async def update_deploy(session: AsyncSession, deploy_id: int, *, owner: str | None = None, **fields) -> None:
    """Change a deploy's fields. Given an `owner`, only while the deploy is active and that
    process's; else nothing changes and LeaseLost is raised."""
    query = update(Deploy).where(Deploy.id == deploy_id)
    if owner is not None:
        query = query.where(_owned_by(owner))
    result = await session.execute(query.values(**fields).execution_options(synchronize_session=False))
    if owner is not None and result.rowcount != 1:
        raise LeaseLost(f"deploy #{deploy_id} is no longer {owner}'s")


async def request_cancel(session: AsyncSession, deploy_id: int, user: str) -> bool:
    """Flag an active deploy for cancellation; the process that owns it acts on the flag."""
    result = await session.execute(
        update(Deploy)
        .where(Deploy.id == deploy_id, Deploy.status.in_(_LEASED))
        .values(cancel_requested_by=user)
    )
    return result.rowcount == 1


async def heartbeat(
    session: AsyncSession, runner_id: str, deploy_ids: Sequence[int], lease_seconds: float
) -> Renewal:
    """Renew the leases of `runner_id`'s deploys among `deploy_ids`: only those still active and
    still its own. A deploy missing from `renewed` was taken from it (reaped) or has ended."""
    if not deploy_ids:
        return Renewal(frozenset(), {})
    rows = await session.execute(
        update(Deploy)
        .where(Deploy.id.in_(deploy_ids), _owned_by(runner_id))
        .values(heartbeat_at=db_now(), lease_expires_at=seconds_after(db_now(), lease_seconds))
        .returning(Deploy.id, Deploy.cancel_requested_by)
        .execution_options(synchronize_session=False)
    )
    renewed, cancels = set(), {}
    for deploy_id, user in rows:
        renewed.add(deploy_id)
        if user is not None:
            cancels[deploy_id] = user
    return Renewal(frozenset(renewed), cancels)


async def stale_deploys(session: AsyncSession, lease_seconds: float) -> list[Deploy]:
    """Active deploys whose lease expired by the database's clock."""
    query = select(Deploy).where(LEASED_SQL, lease_expiry(lease_seconds) < db_now())
    return list((await session.execute(query.order_by(Deploy.id))).scalars())


# --- history -------------------------------------------------------------------------------------


async def history(
    session: AsyncSession,
    *,
    environment: str | None = None,
    status: Status | None = None,
    page: int = 1,
    page_size: int = 20,
) -> Page:
    conditions = [Deploy.is_deleted == "N"]
    counted = []
    if environment:
        conditions.append(Deploy.environment == environment)
        counted.append(DeployCount.environment == environment)
    if status:
        conditions.append(Deploy.status == status.value)
        counted.append(DeployCount.status == status.value)
    # The total comes from the trigger-kept counts, not from count(*) over the matching rows.
    total_query = select(func.coalesce(func.sum(DeployCount.n), 0)).where(*counted)
    total = int((await session.execute(total_query)).scalar_one())
    # Deep pages skip their offset in the index alone, then read only the rows of the page.
    page_ids = (
        select(Deploy.id)
        .where(*conditions)
        .order_by(Deploy.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
        .scalar_subquery()
    )
    query = select(Deploy).where(Deploy.id.in_(page_ids)).order_by(Deploy.id.desc())
    items = list((await session.execute(query)).scalars())
    return Page(items, total, page, page_size)


async def last_success(
    session: AsyncSession,
    environment: str,
    *,
    before_id: int | None = None,
    other_than: str | None = None,
) -> Deploy | None:
    """The newest successful deploy of an environment, optionally older than `before_id` and
    of a commit other than `other_than`."""
    query = select(Deploy).where(
        Deploy.is_deleted == "N", Deploy.environment == environment, Deploy.status == Status.SUCCESS.value
    )
    if before_id is not None:
        query = query.where(Deploy.id < before_id)
    if other_than:
        query = query.where(Deploy.commit_hash.is_not(None), Deploy.commit_hash != other_than)
    query = query.order_by(Deploy.id.desc()).limit(1)
    return (await session.execute(query)).scalar_one_or_none()


async def recent_durations(session: AsyncSession, environment: str, limit: int = 10) -> list[int]:
    query = (
        select(Deploy.duration)
        .where(
            Deploy.is_deleted == "N",
            Deploy.environment == environment,
            Deploy.status == Status.SUCCESS.value,
            Deploy.duration.is_not(None),
        )
        .order_by(Deploy.id.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


# --- logs ----------------------------------------------------------------------------------------


class LogConflict(Exception):
    """Different bytes are stored at this offset of the deploy's log: two writers, never a retry."""


async def append_log(
    session: AsyncSession, deploy_id: int, offset: int, data: bytes, *, owner: str | None = None
) -> int:
    """Store `data` at byte `offset` of a deploy's log; returns how many of its bytes are stored.

    Idempotent, because a chunk whose commit landed but whose reply was lost is written again:
    the insert is ignored when (deploy_id, offset) exists, and the stored row counts if it holds
    the same bytes (all of `data`, or a prefix of it when the retry carries more output than the
    first attempt). Different bytes raise LogConflict. `log_size` ends where the stored row ends.
    Given an `owner`, a deploy no longer its own raises LeaseLost, and the chunk goes with the
    rolled-back transaction.
    """
    insert_into = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    query = (
        insert_into(LogChunk)
        .values(deploy_id=deploy_id, offset=offset, data=data)
        .on_conflict_do_nothing(index_elements=["deploy_id", "offset"])
    )
    stored = len(data)
    if (await session.execute(query)).rowcount == 0:
        existing = (
            await session.execute(
                select(LogChunk.data).where(LogChunk.deploy_id == deploy_id, LogChunk.offset == offset)
            )
        ).scalar_one()
        if not existing or not data.startswith(existing):
            raise LogConflict(f"deploy #{deploy_id}: other log bytes are stored at offset {offset}")
        stored = len(existing)
    await update_deploy(session, deploy_id, owner=owner, log_size=offset + stored)
    return stored


async def read_log(session: AsyncSession, deploy: Deploy, offset: int, limit: int) -> LogSlice:
    """Up to `limit` bytes of the log from byte `offset`."""
    if deploy.log_size == 0 and deploy.logs:
        legacy = deploy.logs.encode()
        data = legacy[offset : offset + limit]
        return LogSlice(data, offset, offset + len(data), len(legacy))
    first = (
        await session.execute(
            select(func.max(LogChunk.offset)).where(
                LogChunk.deploy_id == deploy.id, LogChunk.offset <= offset
            )
        )
    ).scalar_one()
    if first is None:
        return LogSlice(b"", offset, offset, deploy.log_size)
    query = (
        select(LogChunk.offset, LogChunk.data)
        .where(LogChunk.deploy_id == deploy.id, LogChunk.offset >= first, LogChunk.offset < offset + limit)
        .order_by(LogChunk.offset)
    )
    parts = []
    for start, data in await session.execute(query):
        parts.append(data[max(0, offset - start) :])
    data = b"".join(parts)[:limit]
    return LogSlice(data, offset, offset + len(data), deploy.log_size)


# --- retention -----------------------------------------------------------------------------------


# Retention's batch sizes: on a table of a million deploys each batch is one transaction of about
# 25 ms on SQLite, so a deploy's write waits at most that long for the write lock, while the batch
# costs the event loop the same few statements whatever its size.
LOGS_BATCH = 10_000
RECORDS_BATCH = 2_000


async def clear_logs_before(
    session: AsyncSession, cutoff: datetime, *, after_id: int = 0, batch: int = LOGS_BATCH
) -> tuple[int, int | None]:
    """Delete the logs of up to `batch` finished deploys completed before `cutoff`, the first ones
    with an id above `after_id`. Returns how many were cleared and the id to continue after (None
    when none were left).

    Walking the table by id makes a whole retention run one pass over it: picking "any `batch`
    not yet cleared" instead rescans every row cleared so far, batch after batch, which takes
    minutes on a table of a million deploys.

    Every process runs retention at the same time (DESIGN §12). On PostgreSQL a batch takes only
    rows no other process holds (FOR UPDATE SKIP LOCKED; SQLite has no row locks), and on both the
    update clears only logs not cleared yet and counts what it changed: each deploy's logs are
    cleared, and counted, by exactly one process."""
    span = await _retention_span(session, after_id, batch, _logs_due(cutoff))
    if span is None:
        return 0, None
    in_span = Deploy.id.between(*span)
    result = await session.execute(
        update(Deploy)
        .where(in_span, *_logs_due(cutoff))
        .values(logs=None, logs_cleared_at=db_now())
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:
        cleared = select(Deploy.id).where(in_span, Deploy.logs_cleared_at.is_not(None))
        await session.execute(
            delete(LogChunk)
            .where(LogChunk.deploy_id.between(*span), LogChunk.deploy_id.in_(cleared))
            .execution_options(synchronize_session=False)
        )
    return result.rowcount, span[1]


async def soft_delete_before(
    session: AsyncSession, cutoff: datetime, *, after_id: int = 0, batch: int = RECORDS_BATCH
) -> tuple[int, int | None]:
    """Soft-delete up to `batch` finished records created before `cutoff`, the first ones with an
    id above `after_id`. Returns how many were deleted and the id to continue after (None when
    none were left); see `clear_logs_before` for why it walks by id and how processes share it."""
    due = (Deploy.status.in_(_FINISHED), Deploy.created_at < cutoff, Deploy.is_deleted == "N")
    span = await _retention_span(session, after_id, batch, due)
    if span is None:
        return 0, None
    result = await session.execute(
        update(Deploy)
        .where(Deploy.id.between(*span), *due)
        .values(is_deleted="Y")
        .execution_options(synchronize_session=False)
    )
    return result.rowcount, span[1]


def _logs_due(cutoff: datetime) -> tuple[ColumnElement[bool], ...]:
    return (Deploy.status.in_(_FINISHED), Deploy.completed_at < cutoff, Deploy.logs_cleared_at.is_(None))


async def _retention_span(
    session: AsyncSession, after_id: int, batch: int, due: Sequence[ColumnElement[bool]]
) -> tuple[int, int] | None:
    """The first and last id of the next `batch` deploys above `after_id` that are `due`, locked on
    PostgreSQL, skipping those another process holds. The batch's statements then name this span,
    not its ids: a list of thousands of ids costs the event loop milliseconds a batch to send, time
    in which no Slack request is acknowledged."""
    picked = (
        select(Deploy.id)
        .where(Deploy.id > after_id, *due)
        .order_by(Deploy.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
        .subquery()
    )
    first, last = (await session.execute(select(func.min(picked.c.id), func.max(picked.c.id)))).one()
    return None if first is None else (first, last)
