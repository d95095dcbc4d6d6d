"""The audit trail (DESIGN §9): one row per lock, unlock, force, approval, rejection, gate answer,
cancel and refused attempt, written in the same transaction as what it records where there is one.
Newest first, by environment or all; retention deletes rows older than `records_days`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEvent, db_now

MAX_DETAIL = 2000


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditEvent]
    total: int
    page: int
    page_size: int


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    environment: str | None = None,
    deploy_id: int | None = None,
    detail: str = "",
) -> None:
    session.add(
        AuditEvent(
            at=db_now(),
            actor=actor[:255],
            action=action,
            environment=environment,
            deploy_id=deploy_id,
            detail=detail[:MAX_DETAIL],
        )
    )
    await session.flush()


async def page(
    session: AsyncSession, *, environment: str | None = None, page: int = 1, page_size: int = 20
) -> AuditPage:
    conditions = [AuditEvent.environment == environment] if environment else []
    total = (
        await session.execute(select(func.count()).select_from(AuditEvent).where(*conditions))
    ).scalar_one()
    query = (
        select(AuditEvent)
        .where(*conditions)
        .order_by(AuditEvent.id.desc())
        .limit(page_size)
        .offset((page - 1) * page_size)
    )
    return AuditPage(list((await session.execute(query)).scalars()), total, page, page_size)


async def forget_before(session: AsyncSession, cutoff: datetime) -> int:
    result = await session.execute(
        delete(AuditEvent).where(AuditEvent.at < cutoff).execution_options(synchronize_session=False)
    )
    return result.rowcount
