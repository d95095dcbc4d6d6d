"""What every figure shares in one run: the work folder, the local Slack, bot processes, and
measurements that several figures use (so `P3 P4` runs the 200 MB deploy once)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from benchmarks.botprocess import BotProcess
from benchmarks.workspace import Workspace
from bot.config import load_config
from bot.console.workspace import LocalSlack
from bot.deploy.service import DeployService
from storage.db import Database

DATABASES = ("sqlite", "postgresql")
DB_LABEL = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


class Bench:
    def __init__(self, workspace: Workspace, slack: LocalSlack, *, profile: bool = False) -> None:
        self.workspace = workspace
        self.profile = profile
        self.slack = slack
        self._shared: dict[Any, asyncio.Future] = {}
        self._bots = 0

    def say(self, message: str) -> None:
        print(f"  {message}", flush=True)

    async def shared(self, key: Any, compute: Callable[[], Awaitable[Any]]) -> Any:
        """Compute once per run, whichever figure asks first."""
        if key not in self._shared:
            self._shared[key] = asyncio.ensure_future(compute())
        return await self._shared[key]

    async def database(self, db: str, name: str) -> str:
        if db == "sqlite":
            return self.workspace.sqlite_url(name)
        return await self.workspace.postgres_url(name)

    async def drop(self, db: str, url: str) -> None:
        if db == "postgresql":
            await self.workspace.drop_postgres(url)
        else:
            self.workspace.remove_sqlite(url)

    async def stored_digest(self, config: Path, deploy_id: int) -> tuple[str, int]:
        """sha256 and size of a deploy's stored log, read back through the deploy service (after
        the bot under test has stopped, so reading does not count against it)."""
        settings = load_config(config, environ={})
        db = Database(settings.database_url)
        digest, size = hashlib.sha256(), 0
        try:
            async for data in DeployService(settings, db).iter_log(deploy_id):
                digest.update(data)
                size += len(data)
        finally:
            await db.dispose()
        return digest.hexdigest(), size

    @asynccontextmanager
    async def bot(
        self,
        db: str,
        environments: Mapping[str, Mapping[str, Any]],
        *,
        database_url: str | None = None,
        bot: Mapping[str, Any] | None = None,
        retention: Mapping[str, Any] | None = None,
        extra_env: dict | None = None,
        slack: LocalSlack | None = None,
    ) -> AsyncIterator[BotProcess]:
        """A fresh `deploybot serve` on its own new database (unless one is given), talking to
        the run's local Slack (or to `slack`, e.g. one that enforces rate limits)."""
        self._bots += 1
        name = f"bot{self._bots}-{db}"
        url = database_url or await self.database(db, name)
        config = self.workspace.write_config(name, url, environments, bot=bot, retention=retention)
        profile = self.workspace.path(f"{name}.pyspy.txt") if self.profile else None
        process = BotProcess(
            config, (slack or self.slack).api_url, self.workspace.path(f"{name}.log"), extra_env, profile
        )
        try:
            await process.start()
            yield process
        finally:
            await process.stop()
            if database_url is None and db == "postgresql":
                with contextlib.suppress(Exception):
                    await self.workspace.drop_postgres(url)


def run_bare(argv: list[str], out: Path) -> tuple[float, str, int]:
    """Run a script with its output to a file, as a shell would: (seconds, sha256, bytes)."""
    with open(out, "wb") as sink:
        start = time.perf_counter()
        subprocess.run(argv, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=True)
        seconds = time.perf_counter() - start
    return seconds, file_digest(out), out.stat().st_size


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
