"""Environment locks (DESIGN §9): one row per locked environment, judged by the database's clock.
A lock whose `expires_at` passed holds nothing, whether or not the expiry job has removed it yet."""

from __future__ import annotations

from sqlalchemy import case, delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import EnvironmentLock, db_now, seconds_after


async def current(session: AsyncSession, environment: str) -> EnvironmentLock | None:
    """The lock on `environment` now, or None."""
    query = select(EnvironmentLock).where(
        EnvironmentLock.environment == environment, EnvironmentLock.expires_at > db_now()
    )
    return (await session.execute(query)).scalar_one_or_none()


async def all_current(session: AsyncSession) -> list[EnvironmentLock]:
    query = select(EnvironmentLock).where(EnvironmentLock.expires_at > db_now())
    return list((await session.execute(query.order_by(EnvironmentLock.environment))).scalars())


async def take(
    session: AsyncSession, environment: str, holder: str, seconds: float, reason: str
) -> EnvironmentLock | None:
    """Lock `environment` for `holder` until `seconds` from now: a new lock, an expired one taken
    over, or the holder's own extended (its reason replaced when one is given). None when someone
    else holds it (nothing changes)."""
    values = dict(
        holder=holder,
        reason=reason,
        locked_at=db_now(),
        expires_at=seconds_after(db_now(), seconds),
        reminded_at=None,
    )
    insert_into = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert_into(EnvironmentLock).values(environment=environment, **values)
    table = EnvironmentLock.__table__
    own = table.c.holder == statement.excluded.holder
    extended = {
        "expires_at": statement.excluded.expires_at,
        "reminded_at": None,
        "reason": statement.excluded.reason if reason else table.c.reason,
    }
    # The holder's own lock is extended (keeping when it was taken); an expired one is taken over.
    set_ = {
        key: case((own, extended.get(key, table.c[key])), else_=statement.excluded[key]) for key in values
    }
    result = await session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.environment],
            set_=set_,
            where=own | (table.c.expires_at <= db_now()),
        ).returning(table.c.environment)
    )
    if result.first() is None:
        return None
    session.expire_all()
    return await current(session, environment)


async def release(session: AsyncSession, environment: str, *, holder: str | None = None) -> bool:
    """Remove the lock on `environment` (only `holder`'s, when given). False when none was held."""
    query = delete(EnvironmentLock).where(
        EnvironmentLock.environment == environment, EnvironmentLock.expires_at > db_now()
    )
    if holder is not None:
        query = query.where(EnvironmentLock.holder == holder)
    result = await session.execute(query.execution_options(synchronize_session=False))
    return result.rowcount == 1


async def expired(session: AsyncSession) -> list[EnvironmentLock]:
    """Locks past their expiry, removed here: each returned to exactly one caller of all processes
    (the channel is told once)."""
    result = await session.execute(
        delete(EnvironmentLock).where(EnvironmentLock.expires_at <= db_now()).returning(EnvironmentLock)
    )
    return list(result.scalars())


async def due_reminders(session: AsyncSession, within_seconds: float) -> list[EnvironmentLock]:
    """Locks ending within `within_seconds` whose holder was not reminded yet, marked reminded
    here: each returned to exactly one caller of all processes."""
    result = await session.execute(
        update(EnvironmentLock)
        .where(
            EnvironmentLock.reminded_at.is_(None),
            EnvironmentLock.expires_at > db_now(),
            EnvironmentLock.expires_at <= seconds_after(db_now(), within_seconds),
        )
        .values(reminded_at=db_now())
        .returning(EnvironmentLock)
        .execution_options(synchronize_session=False)
    )
    return list(result.scalars())
