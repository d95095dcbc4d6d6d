"""The statuses of DESIGN §9 on a real database (SQLite and PostgreSQL): the two predicates, written
once, agree with the unique index and the reaper; the transition table; the counts kept by
triggers after migration 0009; the migration itself on a database that already holds deploys."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from storage import repository as repo
from storage.db import Database
from storage.models import (
    FINISHED_STATUSES,
    HOLDING_STATUSES,
    LEASED_STATUSES,
    TRANSITIONS,
    WAITING_STATUSES,
    Deploy,
    DeployCount,
    Status,
    db_now,
    seconds_after,
    sources_of,
)
from tests.conftest import ADMIN


async def insert(db: Database, environment: str, status: Status) -> Deploy:
    async with db.session() as session:
        deploy = Deploy(
            environment=environment,
            branch="main",
            deployed_by=ADMIN,
            status=status.value,
            created_at=db_now(),
            updated_at=db_now(),
        )
        session.add(deploy)
        await session.flush()
    return deploy


def test_every_status_is_in_exactly_one_family_and_the_table_covers_them():
    families = [FINISHED_STATUSES, WAITING_STATUSES, HOLDING_STATUSES]
    for status in Status:
        assert sum(status in family for family in families) == 1, status
    assert LEASED_STATUSES < HOLDING_STATUSES
    assert set(TRANSITIONS) == set(Status)
    for status in FINISHED_STATUSES:
        assert not TRANSITIONS[status] and status.is_finished and not status.is_active
    # a deploy waiting for approval, queued or scheduled can always be cancelled, never fail
    for status in WAITING_STATUSES | {Status.AWAITING_APPROVAL}:
        assert Status.CANCELLED in TRANSITIONS[status] and Status.FAILED not in TRANSITIONS[status]
    assert sources_of(Status.PENDING) == {Status.SCHEDULED, Status.QUEUED, Status.AWAITING_APPROVAL}


@pytest.mark.parametrize("holder", sorted(HOLDING_STATUSES))
async def test_a_deploy_that_holds_its_environment_keeps_every_other_holder_out(db, holder):
    await insert(db, "production", Status(holder))
    for other in HOLDING_STATUSES:
        with pytest.raises(IntegrityError):
            await insert(db, "production", other)
    for waiting in WAITING_STATUSES:  # queued and scheduled deploys hold nothing
        await insert(db, "production", waiting)
    await insert(db, "staging", Status.PENDING)
    async with db.session() as session:
        assert (await repo.active_deploy(session, "production")).status == holder


async def test_only_leased_deploys_are_reaped(db):
    """A deploy awaiting approval, queued or scheduled has no lease: however old, never reaped."""
    ids = {status: (await insert(db, "env-" + status.value, status)).id for status in Status}
    async with db.session() as session:
        await session.execute(
            update(Deploy).values(lease_expires_at=seconds_after(db_now(), -3600), heartbeat_at=None)
        )
        stale = {deploy.id for deploy in await repo.stale_deploys(session, lease_seconds=10)}
    assert stale == {ids[status] for status in LEASED_STATUSES}


async def test_moves_follow_the_table(db):
    deploy = await insert(db, "production", Status.QUEUED)
    async with db.session() as session:
        assert not await repo.transition(session, deploy.id, Status.RUNNING)  # queued never runs directly
        assert not await repo.transition(session, deploy.id, Status.FAILED)
        assert await repo.transition(session, deploy.id, Status.AWAITING_APPROVAL)
        assert await repo.transition(session, deploy.id, Status.PENDING)
        assert not await repo.transition(session, deploy.id, Status.QUEUED)  # no way back


async def test_counts_follow_the_new_statuses(db):
    """The triggers of migration 0004 count 'awaiting_approval' (17 characters) like any status."""
    deploy = await insert(db, "production", Status.AWAITING_APPROVAL)
    await insert(db, "production", Status.QUEUED)
    async with db.session() as session:
        await repo.transition(session, deploy.id, Status.CANCELLED)
        rows = await session.execute(select(DeployCount.status, DeployCount.n).where(DeployCount.n > 0))
        counts = dict(rows.all())
    assert counts == {"queued": 1, "cancelled": 1}


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
async def test_the_governance_migration_keeps_deploys_counts_and_triggers(db_url):
    db = Database(db_url)
    try:
        await db.upgrade("0008")
        async with db.engine.begin() as conn:
            for n, status in enumerate(["success", "failed", "running"]):
                await conn.exec_driver_sql(
                    "INSERT INTO deploy_history (environment, branch, status, deployed_by, description,"
                    " created_at, updated_at, is_deleted, skip_build, skip_migrations, source, log_size)"
                    f" VALUES ('e{n}', 'main', '{status}', 'U1', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP,"
                    " 'N', false, false, 'slack', 0)"
                )
        await db.upgrade()
        await insert(db, "e9", Status.AWAITING_APPROVAL)
        async with db.session() as session:
            counts = dict((await session.execute(select(DeployCount.status, DeployCount.n))).all())
            total = len((await session.execute(select(Deploy.id))).all())
        assert counts == {"success": 1, "failed": 1, "running": 1, "awaiting_approval": 1}
        assert total == 4
    finally:
        await db.dispose()
