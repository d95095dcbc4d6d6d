"""The live bot processes, the deploys none of them holds yet, and the claim that hands one over.

Each process keeps its row in `deploy_runners` while it runs (`keep_alive`, with its leases): what
it is, where, and which environments' scripts it runs. A row whose `expires_at` passed by the
database's clock is a process gone; any process deletes it. A deploy asked of a process that does
not run its environment is stored without an owner (`runner_id` NULL); a process that runs that
environment claims it with one UPDATE over rows picked `FOR UPDATE SKIP LOCKED`, so two claimers
never take the same deploy and never wait for each other (DESIGN §12).
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import LEASED_SQL, Deploy, Runner, Status, db_now, seconds_after

CLAIM_BATCH = 20


async def keep_alive(
    session: AsyncSession,
    *,
    runner_id: str,
    host: str,
    pid: int,
    role: str,
    environments: Collection[str],
    draining: bool,
    lease_seconds: float,
) -> None:
    """Record (or renew) a live process until `lease_seconds` from now, and forget those whose
    time passed: a process gone without saying so."""
    values = dict(
        host=host,
        pid=pid,
        role=role,
        environments=",".join(sorted(environments)),
        draining=draining,
        seen_at=db_now(),
        expires_at=seconds_after(db_now(), lease_seconds),
    )
    insert_into = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert_into(Runner)
        .values(runner_id=runner_id, started_at=db_now(), **values)
        .on_conflict_do_update(index_elements=["runner_id"], set_=values)
    )
    await session.execute(
        delete(Runner)
        .where(Runner.expires_at < db_now(), Runner.runner_id != runner_id)
        .execution_options(synchronize_session=False)
    )


async def forget(session: AsyncSession, runner_id: str) -> None:
    await session.execute(delete(Runner).where(Runner.runner_id == runner_id))


async def live(session: AsyncSession) -> list[Runner]:
    """The processes alive by the database's clock, oldest first."""
    query = select(Runner).where(Runner.expires_at > db_now()).order_by(Runner.started_at, Runner.runner_id)
    return list((await session.execute(query)).scalars())


async def unclaimed(session: AsyncSession, environments: Collection[str]) -> list[int]:
    """Pending deploys of `environments` that no process holds, oldest first. A plain read: on
    SQLite a claim's UPDATE takes the write lock even when it matches nothing, so callers ask
    this first."""
    query = (
        select(Deploy.id)
        .where(
            LEASED_SQL,
            Deploy.status == Status.PENDING.value,
            Deploy.runner_id.is_(None),
            Deploy.environment.in_(list(environments)),
        )
        .order_by(Deploy.id)
        .limit(CLAIM_BATCH)
    )
    return list((await session.execute(query)).scalars())


async def claim_unowned(
    session: AsyncSession, deploy_ids: Collection[int], runner_id: str, lease_seconds: float
) -> list[Deploy]:
    """Take the deploys among `deploy_ids` still pending and unowned, leased to `runner_id`. Rows
    another claimer holds locked right now are skipped, not waited for."""
    free = (
        select(Deploy.id)
        .where(
            Deploy.id.in_(list(deploy_ids)),
            Deploy.status == Status.PENDING.value,
            Deploy.runner_id.is_(None),
        )
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    query = (
        update(Deploy)
        .where(Deploy.id.in_(free), Deploy.runner_id.is_(None), Deploy.status == Status.PENDING.value)
        .values(
            runner_id=runner_id,
            heartbeat_at=db_now(),
            lease_expires_at=seconds_after(db_now(), lease_seconds),
            updated_at=db_now(),
        )
        .returning(Deploy)
        .execution_options(synchronize_session=False)
    )
    claimed = list((await session.execute(query)).scalars())
    return sorted(claimed, key=lambda deploy: deploy.id)
