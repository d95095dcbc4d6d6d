"""Shared fixtures: a real database (SQLite and PostgreSQL), configs wired to the test scripts.

Every test that asks for `db_url` (directly or through `db`, `config`, `service`) runs twice: on a
fresh SQLite file and on a fresh PostgreSQL database. PostgreSQL comes from TEST_DATABASE_URL; when
it is unset those cases are skipped (with the reason shown); when it is set but unreachable the
run fails.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.config import Config, parse_config
from bot.service import DeployService
from storage.db import Database, normalize_url

SCRIPTS = Path(__file__).parent / "scripts"
ADMIN = "U0ADMIN01"
GUEST = "U0GUEST01"


def _pg_admin_url() -> str | None:
    url = os.environ.get("TEST_DATABASE_URL")
    return normalize_url(url) if url else None


async def _pg_exec(url: str, sql: str) -> None:
    import asyncpg

    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
        timeout=10,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> str | None:
    """A throwaway PostgreSQL database for this test run, dropped at the end."""
    admin = _pg_admin_url()
    if admin is None:
        yield None
        return
    name = f"deploybot_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg_exec(admin, f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # set but unreachable: that is a failure, not a skip
        pytest.fail(f"TEST_DATABASE_URL is set but PostgreSQL is unreachable: {exc}", pytrace=False)
    yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path, pg_database) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'deploybot.db'}"
    if pg_database is None:
        pytest.skip("PostgreSQL case: TEST_DATABASE_URL is not set")
    asyncio.run(_pg_exec(pg_database, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"))
    return pg_database


@pytest.fixture
async def db(db_url) -> AsyncIterator[Database]:
    database = Database(db_url)
    await database.upgrade()
    yield database
    await database.dispose()


ConfigFactory = Callable[..., Config]


@pytest.fixture
def make_config(tmp_path, db_url) -> ConfigFactory:
    """Build a Config from keyword overrides; environments default to the test scripts."""

    def build(environments: dict | None = None, bot: dict | None = None, retention: dict | None = None,
              environ: dict | None = None) -> Config:
        raw = {
            "bot": {
                "admins": [ADMIN],
                "database_url": db_url,
                "heartbeat_seconds": 0.5,
                "stale_after_seconds": 3,
                "cancel_grace_seconds": 1,
                **(bot or {}),
            },
            "retention": retention or {},
            "environments": environments
            or {
                "production": {"label": "生产环境", "aliases": ["prod", "生产"], "script": str(SCRIPTS / "steps.sh")},
                "staging": {"label": "预发布环境", "script": str(SCRIPTS / "steps.sh")},
            },
        }
        return parse_config(raw, tmp_path / "deploybot.toml", environ or {})

    return build


@pytest.fixture
def config(make_config) -> Config:
    return make_config()


@pytest.fixture
async def service(config) -> AsyncIterator[DeployService]:
    db = Database(config.database_url)
    svc = DeployService(config, db, base_env=dict(os.environ))
    await svc.start()
    yield svc
    await svc.close()
    await db.dispose()
