"""Where a benchmark run keeps its files and databases.

Everything lives under benchmarks/.work/ (git-ignored). PostgreSQL databases are throwaway ones
created on the admin URL ($TEST_DATABASE_URL, else the local server's `test` database) and dropped
when the run ends, so nothing is left behind in `test` itself.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bot.config import normalize_url

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / ".work"
SCRIPTS = HERE / "scripts"
DEFAULT_PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
ADMIN_USER = "U0ADMIN01"  # an admin in the local Slack workspace (bot/console/team.py)
CHANNEL = "C0DEPLOY1"


def pg_admin_url() -> str:
    return normalize_url(os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG_ADMIN)


async def pg_execute(url: str, sql: str, timeout: float = 30) -> Any:
    import asyncpg

    parsed = make_url(url)
    conn = await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
        timeout=timeout,
    )
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


class Workspace:
    """One run's folder and the databases it made."""

    def __init__(self) -> None:
        self.root = WORK / f"run-{os.getpid()}"
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        self._pg_databases: list[str] = []
        self.pg_admin = pg_admin_url()

    def path(self, name: str) -> Path:
        return self.root / name

    def sqlite_url(self, name: str) -> str:
        url = f"sqlite+aiosqlite:///{self.root / f'{name}.db'}"
        self.remove_sqlite(url)
        return url

    def remove_sqlite(self, url: str) -> None:
        path = make_url(url).database
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    async def postgres_url(self, name: str) -> str:
        """A new, empty PostgreSQL database, dropped by `close()`."""
        database = f"deploybot_bench_{name}_{uuid.uuid4().hex[:8]}"
        await pg_execute(self.pg_admin, f'CREATE DATABASE "{database}"')
        self._pg_databases.append(database)
        return make_url(self.pg_admin).set(database=database).render_as_string(hide_password=False)

    async def drop_postgres(self, url: str) -> None:
        database = make_url(url).database
        await pg_execute(self.pg_admin, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if database in self._pg_databases:
            self._pg_databases.remove(database)

    async def close(self, keep_files: bool = False) -> None:
        for database in list(self._pg_databases):
            await pg_execute(self.pg_admin, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        self._pg_databases.clear()
        if not keep_files:
            shutil.rmtree(self.root, ignore_errors=True)

    def write_config(
        self,
        name: str,
        database_url: str,
        environments: Mapping[str, Mapping[str, Any]],
        *,
        bot: Mapping[str, Any] | None = None,
        retention: Mapping[str, Any] | None = None,
    ) -> Path:
        """A deploybot.toml for one bot process."""
        settings = {"admins": [ADMIN_USER], "database_url": database_url, "locale": "en", **(bot or {})}
        lines = ["[bot]", *_table(settings)]
        if retention:
            lines += ["", "[retention]", *_table(retention)]
        for env_name, env in environments.items():
            lines += ["", f"[environments.{env_name}]", *_table(env)]
        path = self.root / f"{name}.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


def script(name: str) -> str:
    return str(SCRIPTS / name)


def _table(values: Mapping[str, Any]) -> list[str]:
    # JSON strings, numbers, booleans and arrays of them are valid TOML values.
    return [f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in values.items()]
