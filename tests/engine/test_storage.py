"""Schema and migrations on both databases."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, event, func, insert, inspect, select, update

from storage.db import Database
from storage.models import TRANSITIONS, Base, Deploy, Status, sources_of


async def test_migrations_build_exactly_the_models(db):
    def diff(conn):
        return compare_metadata(MigrationContext.configure(conn), Base.metadata)

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
        indexes = await conn.run_sync(lambda c: {i["name"] for i in inspect(c).get_indexes("deploy_history")})
    assert {
        "uq_deploy_history_active_environment",
        "ix_deploy_history_env",
        "ix_deploy_history_status",
    } <= indexes


async def test_an_empty_database_is_migrated_on_start_and_upgrade_is_idempotent(db_url):
    db = Database(db_url)
    try:
        assert await db.ensure_schema() is True
        assert await db.ensure_schema() is False
        assert await db.has_schema()
    finally:
        await db.dispose()


def test_db_upgrade_command(tmp_path):
    script = tmp_path / "s.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    toml = tmp_path / "c.toml"
    toml.write_text(f'[bot]\nadmins=["U1"]\n[environments.production]\nscript="{script}"\n')
    out = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(toml), "db", "upgrade"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    assert "database at head" in out.stdout
    assert (tmp_path / "deploybot.db").exists()


def test_transitions_only_leave_active_states():
    for status in Status:
        assert bool(TRANSITIONS[status]) == status.is_active
    assert sources_of(Status.SUCCESS) == {Status.RUNNING}
    assert sources_of(Status.FAILED) == {Status.PENDING, Status.RUNNING}


async def test_a_move_the_lifecycle_does_not_allow_changes_nothing(db):
    from storage import repository as repo

    async with db.session() as session:
        row = await repo.insert_deploy(session, environment="production", branch="main", deployed_by="U1")
        assert (
            await repo.transition(session, row.id, Status.SUCCESS) is False
        )  # pending -> success skips running
        assert await repo.transition(session, row.id, Status.RUNNING) is True
        assert await repo.transition(session, row.id, Status.SUCCESS) is True
        assert await repo.transition(session, row.id, Status.FAILED) is False  # finished stays finished
        assert await repo.transition(session, row.id, Status.RUNNING) is False
        again = await repo.get_deploy(session, row.id)
        await session.refresh(again)
    assert again.state is Status.SUCCESS and again.duration is not None and again.completed_at is not None


# --- deploy counts (history totals) -----------------------------------------------------------------


async def counted_totals(session) -> dict[tuple[str | None, str | None], tuple[int, int]]:
    """For every filter a history page can have: (total the page reports, rows really matching)."""
    from storage import repository as repo

    totals = {}
    for environment in (None, "production", "staging"):
        for status in (None, *Status):
            page = await repo.history(session, environment=environment, status=status, page_size=1)
            conditions = [Deploy.is_deleted == "N"]
            if environment:
                conditions.append(Deploy.environment == environment)
            if status:
                conditions.append(Deploy.status == status.value)
            real = (
                await session.execute(select(func.count()).select_from(Deploy).where(*conditions))
            ).scalar_one()
            totals[environment, status and status.value] = (page.total, real)
    return totals


async def test_history_totals_follow_every_change_to_the_table(db):
    from storage import repository as repo

    async with db.session() as session:
        ids = []
        for n in range(9):
            row = await repo.insert_deploy(
                session, environment=("production", "staging", "test")[n % 3], branch="main", deployed_by="U1"
            )
            ids.append(row.id)
            await repo.transition(session, row.id, Status.RUNNING)
            if n < 8:
                await repo.transition(session, row.id, (Status.SUCCESS, Status.FAILED)[n % 2])
        await repo.request_cancel(session, ids[8], "U1")
        await repo.transition(session, ids[8], Status.CANCELLED)
        await repo.insert_deploy(
            session, environment="production", branch="next", deployed_by="U1"
        )  # pending
        await session.execute(update(Deploy).where(Deploy.id == ids[0]).values(is_deleted="Y"))
        await session.execute(update(Deploy).where(Deploy.id == ids[1]).values(environment="staging"))
        await session.execute(delete(Deploy).where(Deploy.id == ids[2]))
        await session.execute(
            delete(Deploy).where(Deploy.id == ids[0])
        )  # soft-deleted, then deleted: subtracted once
    async with db.session() as session:
        totals = await counted_totals(session)
    assert totals[None, None] == (8, 8)  # ten rows, one soft-deleted (then deleted), one deleted
    assert totals["production", "pending"] == (1, 1)
    assert all(page == real for page, real in totals.values()), totals


async def test_the_counts_migration_counts_the_rows_already_there(db_url):
    db = Database(db_url)
    try:
        await db.upgrade("0003")
        async with db.session() as session:
            # Core inserts of the columns 0003 has: the ORM model writes every column of today's
            for n in range(5):
                await session.execute(
                    insert(Deploy.__table__).values(
                        environment="production",
                        branch="main",
                        deployed_by="U1",
                        status=Status.FAILED.value,
                        is_deleted="Y" if n == 0 else "N",
                    )
                )
        await db.upgrade()
        async with db.session() as session:
            totals = await counted_totals(session)
        assert totals["production", "failed"] == (4, 4)
        assert all(page == real for page, real in totals.values()), totals
    finally:
        await db.dispose()


async def test_looking_for_active_deploys_does_not_scan_the_table(tmp_path):
    """The reaper and the heartbeat run every few seconds: on SQLite, their queries must be
    answered from the partial indexes of active deploys, whatever the table's size. (PostgreSQL
    plans by statistics, and rightly scans a small table, so this is about SQLite only.)"""
    from storage import repository as repo

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'plans.db'}")
    await db.upgrade()
    queries = {
        "active": lambda s: repo.active_deploys(s),
        "stale": lambda s: repo.stale_deploys(s, 30),
        "one environment": lambda s: repo.active_deploy(s, "production"),
    }
    statements = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2:4]))
    try:
        plans = {}
        for name, query in queries.items():
            async with db.session() as session:
                await query(session)
            statement, parameters = statements[-1]
            async with db.engine.connect() as conn:
                rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", tuple(parameters))
                plans[name] = [row[-1] for row in rows]
    finally:
        await db.dispose()
    for name, plan in plans.items():
        assert plan and all(
            "INDEX ix_deploy_history_active" in step or "INDEX uq_deploy_history_active_environment" in step
            for step in plan
        ), (name, plan)
