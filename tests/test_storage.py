"""Schema and migrations on both databases."""

from __future__ import annotations

import subprocess
import sys

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from storage.db import Database
from storage.models import TRANSITIONS, Base, Status, sources_of


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
