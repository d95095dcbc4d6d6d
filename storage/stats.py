"""Figures the metrics endpoint reads from the database at scrape time: how many deploys wait or
run, per environment and status, from the trigger-kept `deploy_counts` (no scan of the history)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import DeployCount, Status

# The statuses shown as gauges: what runs now, and what waits for its turn, an approver or its time.
CURRENT_STATUSES = (Status.RUNNING, Status.QUEUED, Status.AWAITING_APPROVAL, Status.SCHEDULED)


async def count_current(session: AsyncSession) -> dict[tuple[str, str], int]:
    """{(environment, status): how many live deploys} for the CURRENT_STATUSES (absent: none)."""
    query = select(DeployCount.environment, DeployCount.status, DeployCount.n).where(
        DeployCount.status.in_([status.value for status in CURRENT_STATUSES]), DeployCount.n > 0
    )
    return {(env, status): int(n) for env, status, n in (await session.execute(query)).all()}
