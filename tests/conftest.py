"""Shared fixtures: a real database (SQLite and PostgreSQL), configs wired to the test scripts.

Every test that asks for `db_url` (directly or through `db`, `config`, `service`) runs twice: on a
fresh SQLite file and on a fresh PostgreSQL database. PostgreSQL comes from TEST_DATABASE_URL; when
it is unset those cases are skipped (with the reason shown); when it is set but unreachable the
run fails.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bot.config import Config, normalize_url, parse_config
from bot.deploy.service import DeployService
from storage.db import Database

# `bot` and `start_bot`; `account` and `folder` (a throwaway system user, for the run_as tests)
pytest_plugins = ["tests.slackbot_fixtures", "tests.throwaway"]

SCRIPTS = Path(__file__).parent / "scripts"
# What Slack really sends and answers (a copy of the shared payload examples), for the fake and the tests.
PAYLOADS = Path(__file__).parent / "slack_payloads"
ADMIN = "U0ADMIN01"
GUEST = "U0GUEST01"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


async def gone(pid: int, timeout: float = 10) -> bool:
    """Whether the process is gone within `timeout` (the kernel may take a moment to reap it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while alive(pid) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return not alive(pid)


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

    def build(
        environments: dict | None = None,
        bot: dict | None = None,
        retention: dict | None = None,
        environ: dict | None = None,
    ) -> Config:
        raw = {
            "bot": {
                "admins": [ADMIN],
                "database_url": db_url,
                "heartbeat_seconds": 0.5,
                "lease_seconds": 3,
                "cancel_grace_seconds": 1,
                **(bot or {}),
            },
            "retention": retention or {},
            "environments": environments
            or {
                "production": {
                    "label": "生产环境",
                    "aliases": ["prod", "生产"],
                    "script": str(SCRIPTS / "steps.sh"),
                },
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


def _git(*args: str, cwd: Path) -> str:
    import subprocess

    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


class GitRepo:
    """A local repository with branch `main` (two commits: `first`, then `second`) and branch `old`
    at `first`."""

    def __init__(self, root: Path) -> None:
        self.path = root / "repo"
        self.path.mkdir()
        _git("init", "-q", "-b", "main", cwd=self.path)
        (self.path / "VERSION").write_text("1\n")
        _git("add", ".", cwd=self.path)
        _git("commit", "-q", "-m", "first", cwd=self.path)
        self.first = _git("rev-parse", "HEAD", cwd=self.path)
        _git("branch", "old", cwd=self.path)
        (self.path / "VERSION").write_text("2\n")
        _git("commit", "-q", "-am", "second", cwd=self.path)
        self.second = _git("rev-parse", "HEAD", cwd=self.path)

    def commit(self, message: str) -> str:
        (self.path / "VERSION").write_text(message + "\n")
        _git("commit", "-q", "-am", message, cwd=self.path)
        return _git("rev-parse", "HEAD", cwd=self.path)

    def drop_second(self) -> None:
        """Rewind `main` to `first` and garbage-collect `second`, as after a force-push."""
        _git("reset", "-q", "--hard", self.first, cwd=self.path)
        _git("reflog", "expire", "--expire=now", "--all", cwd=self.path)
        _git("gc", "-q", "--prune=now", cwd=self.path)


@pytest.fixture
def git_repo(tmp_path) -> GitRepo:
    return GitRepo(tmp_path)
